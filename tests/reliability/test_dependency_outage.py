"""PostgreSQL goes away mid-load: requests get 503 with Retry-After, and the server recovers alone.

The server reaches PostgreSQL through a TCP proxy owned by the test. Cutting the proxy (every
connection reset, new ones refused) is what the server sees when the database stops or the
network to it fails; restoring it is the database coming back. Under a write load (PDS patches,
retried with the same X-Request-ID after a 503, as a client should) and a read load:
- while cut: answers are 503 with Retry-After and an OperationOutcome, never another 5xx, and
  they come quickly (no request hangs on the dead database);
- after restore, with no restart: reads and writes succeed again;
- every acknowledged patch is there exactly once, and the audit chain verifies.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.api.pds_helpers import new_patient
from tests.live_server import CLI, Server, free_port
from tests.reliability.callers import Callers
from tests.reliability.conftest import report

pytestmark = pytest.mark.e2e

PDS = "/personal-demographics/FHIR/R4"
PG_URL = os.environ.get("OPENSPINE_TEST_POSTGRES_URL")


class Proxy:
    """A TCP forwarder that can be cut (all connections reset, none accepted) and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.close()  # linger 0: a reset, as a dead server's host sends
            except OSError:
                pass

    def restore(self) -> None:
        self.start()


@pytest.fixture
def database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("OPENSPINE_TEST_POSTGRES_URL is not set (CI sets it)")
    name = f"outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_outage_gives_503_and_the_server_recovers(tmp_path: Path, database: str) -> None:
    assert PG_URL is not None
    conninfo = psycopg.conninfo.conninfo_to_dict(PG_URL)
    proxy = Proxy((str(conninfo.get("host", "127.0.0.1")), int(conninfo.get("port", 5432))))
    proxy.start()
    auth = PG_URL.split("//", 1)[1].rsplit("@", 1)[0]
    url = f"postgresql://{auth}@127.0.0.1:{proxy.port}/{database}"
    server = Server(tmp_path / "store", tmp_path / "server.log", patients=10, store_url=url)
    server.start(first=True)
    try:
        callers = Callers(server.url, server.data_dir)
        token = callers.user("R8000")
        created = httpx.post(
            f"{server.url}{PDS}/Patient",
            json=new_patient("Outage"),
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
        )
        assert created.status_code == 201, created.text
        nhs = created.json()["id"]
        version = int(created.headers["etag"].split('"')[1])
        start_version = version
        statuses: dict[int, int] = {}
        slowest = 0.0
        acknowledged = 0

        def call(method: str, path: str, **kwargs: object) -> httpx.Response:
            nonlocal slowest
            began = time.monotonic()
            response = httpx.request(method, f"{server.url}{path}", timeout=30, **kwargs)  # type: ignore[arg-type]
            slowest = max(slowest, time.monotonic() - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500 or response.status_code == 503, response.text
            if response.status_code == 503:
                assert response.headers.get("retry-after"), response.headers
                assert response.json()["resourceType"] == "OperationOutcome"
            return response

        def patch_once(gender: str) -> None:
            nonlocal version, acknowledged
            request_id = str(uuid.uuid4())
            deadline = time.monotonic() + 60
            while True:
                response = call(
                    "PATCH",
                    f"{PDS}/Patient/{nhs}",
                    json={"patches": [{"op": "replace", "path": "/gender", "value": gender}]},
                    headers={
                        "Authorization": f"Bearer {token}",
                        "X-Request-ID": request_id,
                        "If-Match": f'W/"{version}"',
                        "Content-Type": "application/json-patch+json",
                    },
                )
                if response.status_code == 200:
                    version = int(response.headers["etag"].split('"')[1])
                    acknowledged += 1
                    return
                assert response.status_code == 503, response.text
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.3)

        def read() -> int:
            return call(
                "GET",
                f"{PDS}/Patient/{nhs}",
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
            ).status_code

        for i in range(10):
            patch_once("male" if i % 2 == 0 else "female")
        proxy.cut()
        during = [read() for _ in range(5)]
        assert set(during) == {503}, during
        failed_write = call(
            "PATCH",
            f"{PDS}/Patient/{nhs}",
            json={"patches": [{"op": "replace", "path": "/gender", "value": "male"}]},
            headers={
                "Authorization": f"Bearer {token}",
                "X-Request-ID": str(uuid.uuid4()),
                "If-Match": f'W/"{version}"',
                "Content-Type": "application/json-patch+json",
            },
        )
        assert failed_write.status_code == 503
        time.sleep(2)
        proxy.restore()
        for i in range(10):
            patch_once("male" if i % 2 == 0 else "female")
        assert read() == 200
        final = httpx.get(
            f"{server.url}{PDS}/Patient/{nhs}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
        )
        assert int(final.headers["etag"].split('"')[1]) == start_version + acknowledged
        assert slowest < 10, f"a request took {slowest:.1f} s while the database was away"
        server.stop()
        verified = subprocess.run(
            [*CLI, "audit", "verify", "--data-dir", str(server.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        server.stop()
        proxy.cut()
    report(
        "outage-postgres",
        {
            "patches_acknowledged": acknowledged,
            "statuses": dict(sorted(statuses.items())),
            "slowest_answer_s": round(slowest, 2),
            "lost": 0,
        },
    )
