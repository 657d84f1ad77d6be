"""Starting, killing and restarting a real OpenSpine server process on one data dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "openspine.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``openspine demo --mesh-sandbox`` (first start) or ``serve`` (restarts) on one data dir."""

    def __init__(
        self,
        data_dir: Path,
        log: Path,
        *,
        patients: int = 0,
        store_url: str | None = None,
        workers: int = 1,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.log = log
        self.patients = patients
        self.store_url = store_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        #: The server's TMPDIR (where its writer process's socket directory goes): a SIGKILL of
        #: the whole group leaves that directory behind, and stop() removes it. Short, because a
        #: Unix socket's path is limited to 107 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="openspine-test-"))

    def start(self, *, first: bool) -> None:
        args = ["demo", "--patients", str(self.patients), "--mesh-sandbox"] if first else ["serve"]
        if first and self.store_url is not None:
            args += ["--store-url", self.store_url]
        env = {
            **os.environ,
            "OPENSPINE_MESH_SANDBOX": "true",
            "OPENSPINE_MESH_SHARED_KEY": "TestKey",
            "TMPDIR": str(self.tmp),
        }
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [
                    *CLI,
                    *args,
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                env=env,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                pytest.fail(f"server exited early: {self.log.read_text()[-2000:]}")
            if line.strip() == self.url:
                return
        pytest.fail("server did not start in 120 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.kill(signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def serving(data_dir: Path, log: Path, **options: Any) -> Iterator[Server]:
    """A first start (``openspine demo``) of a :class:`Server`, stopped on the way out."""
    server = Server(data_dir, log, **options)
    server.start(first=True)
    try:
        yield server
    finally:
        server.stop()
