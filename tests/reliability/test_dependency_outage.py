"""PostgreSQL goes away mid-load: requests get 503 with Retry-After, and the server recovers alone.

Two ways of taking it away, the same checks:
- network-cut: the server reaches PostgreSQL through a TCP proxy owned by the test; cutting it
  resets every connection and refuses new ones, as a failed network or host does;
- postgres-stop: the database server itself is stopped (fast shutdown) and started again, with
  the command in OPENSPINE_TEST_POSTGRES_CTL (CI sets ``pg_ctlcluster <version> main``).
Under a write load (PDS patches, retried with the same X-Request-ID after a 503, as a client
should) and a read load:
- while away: answers are 503 with Retry-After and an OperationOutcome, never another 5xx, and
  they come quickly (no request hangs on the dead database);
- after it returns, with no restart: reads and writes succeed again;
- every acknowledged patch is there exactly once, and the audit chain verifies.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.api.pds_helpers import new_patient
from tests.live_server import CLI, Server, free_port
from tests.postgres import PG_URL, throwaway_database
from tests.reliability.callers import Callers
from tests.reliability.conftest import report

pytestmark = pytest.mark.e2e

PDS = "/personal-demographics/FHIR/R4"
#: A command that stops and starts the test PostgreSQL (``pg_ctlcluster 15 main``); CI sets it.
PG_CTL = os.environ.get("OPENSPINE_TEST_POSTGRES_CTL")


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


@dataclass
class Outage:
    """How the test takes PostgreSQL away and brings it back, and the URL the server uses."""

    kind: str
    url: str
    cut: Callable[[], None]
    restore: Callable[[], None]


def _wait_for_postgres(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.Error:
            time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


@pytest.fixture(params=["network-cut", "postgres-stop"])
def outage(request: pytest.FixtureRequest, database: str) -> Iterator[Outage]:
    assert PG_URL is not None
    direct, name = database, database.rsplit("/", 1)[1]
    if request.param == "postgres-stop":
        if not PG_CTL:
            pytest.skip("OPENSPINE_TEST_POSTGRES_CTL is not set (CI sets it: pg_ctlcluster …)")
        ctl = shlex.split(PG_CTL)

        def stop() -> None:
            subprocess.run([*ctl, "stop", "-m", "fast"], check=True, timeout=60)

        def start() -> None:
            # Exit status 2 is "already running"; whether it is up is what the wait checks.
            subprocess.run([*ctl, "start"], check=False, timeout=60, capture_output=True)
            _wait_for_postgres(direct)

        try:
            yield Outage("postgres-stop", direct, stop, start)
        finally:
            start()  # whatever happened, the server is left running for the tests after
        return
    conninfo = psycopg.conninfo.conninfo_to_dict(PG_URL)
    proxy = Proxy((str(conninfo.get("host", "127.0.0.1")), int(str(conninfo.get("port", 5432)))))
    proxy.start()
    auth = PG_URL.split("//", 1)[1].rsplit("@", 1)[0]
    try:
        yield Outage(
            "network-cut",
            f"postgresql://{auth}@127.0.0.1:{proxy.port}/{name}",
            proxy.cut,
            proxy.restore,
        )
    finally:
        proxy.cut()


@pytest.fixture
def database() -> Iterator[str]:
    """A throwaway database's URL."""
    with throwaway_database("outage") as url:
        yield url


def test_postgres_outage_gives_503_and_the_server_recovers(tmp_path: Path, outage: Outage) -> None:
    url = outage.url
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
        outage.cut()
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
        outage.restore()
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
    report(
        f"outage-{outage.kind}",
        {
            "patches_acknowledged": acknowledged,
            "statuses": dict(sorted(statuses.items())),
            "slowest_answer_s": round(slowest, 2),
            "lost": 0,
        },
    )
