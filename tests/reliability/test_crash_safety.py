"""Crash safety: a write load while the server is SIGKILLed and restarted, on SQLite and PostgreSQL.

Three kinds of writer run at once, each as a real client would behave:
- PDS: each worker creates its own patient, then patches it again and again; a request that
  gets no answer (the server died under it) is retried with the *same* X-Request-ID until it
  gets one, so every logical write must take effect exactly once;
- EPS: each worker prepares, signs and submits prescriptions, retrying the same way;
- MESH: each worker sends 1 KiB messages (no retry: MESH has no request id, so an unanswered
  send is in doubt, and is allowed to be there or not, but never half there).
Meanwhile the server is killed with SIGKILL several times and restarted on the same store.
Afterwards: every write that was answered with success is present exactly once, with its
content whole; the patient versions count the patches exactly; ``openspine audit verify`` passes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.eps import Flow, order
from mesh_client import AuthTokenGenerator

from tests.api.pds_helpers import new_patient
from tests.live_server import CLI, Server
from tests.postgres import throwaway_database
from tests.reliability.callers import Callers
from tests.reliability.conftest import report

pytestmark = pytest.mark.e2e

PDS = "/personal-demographics/FHIR/R4"
EPS = "/electronic-prescriptions/FHIR/R4"
V2 = "application/vnd.mesh.v2+json"
KILLS = int(os.environ.get("OPENSPINE_CRASH_KILLS", "3"))
#: How long a request may keep being retried while the server restarts.
RETRY_SECONDS = 90.0


class ServerGone(Exception):
    """The run is over; a worker stops at its next request."""


@dataclass
class Ledger:
    """What the clients were told: each success, and each send left in doubt."""

    patients: dict[str, list[str]] = field(default_factory=dict)  # nhs → genders patched
    prescriptions: list[str] = field(default_factory=list)
    mesh_sent: dict[str, bytes] = field(default_factory=dict)  # message id → body
    mesh_in_doubt: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Writer:
    def __init__(self, url: Callable[[], str], stop: threading.Event, ledger: Ledger) -> None:
        self.url = url
        self.stop = stop
        self.ledger = ledger

    def send(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> httpx.Response:
        """One request; with ``retry``, the same request again until answered (not 503)."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            if self.stop.is_set() and not retry:
                raise ServerGone
            try:
                response = httpx.request(method, self.url() + path, timeout=30, **kwargs)
                if response.status_code != 503:
                    return response
            except httpx.TransportError:
                if not retry:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} never answered")
            with self.ledger.lock:
                self.ledger.retries += 1
            time.sleep(0.2)


def _pds_worker(writer: Writer, callers: Callers, worker: int) -> None:
    token = callers.user("R8000")
    created = writer.send(
        "POST",
        f"{PDS}/Patient",
        retry=True,
        json=new_patient(f"Crashtest{chr(65 + worker)}", born=f"19{50 + worker}-01-0{1 + worker}"),
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    nhs = created.json()["id"]
    version = int(created.headers["etag"].split('"')[1])
    genders: list[str] = []
    with writer.ledger.lock:
        writer.ledger.patients[nhs] = genders
    while not writer.stop.is_set():
        gender = "male" if len(genders) % 2 == 0 else "female"
        response = writer.send(
            "PATCH",
            f"{PDS}/Patient/{nhs}",
            retry=True,
            json={"patches": [{"op": "replace", "path": "/gender", "value": gender}]},
            headers={
                "Authorization": f"Bearer {callers.user('R8000')}",
                "X-Request-ID": str(uuid.uuid4()),
                "If-Match": f'W/"{version}"',
                "Content-Type": "application/json-patch+json",
            },
        )
        assert response.status_code == 200, response.text
        version = int(response.headers["etag"].split('"')[1])
        genders.append(gender)


def _eps_worker(writer: Writer, callers: Callers, flow: Flow) -> None:
    pharmacy = flow.pharmacist["ods_code"]
    while not writer.stop.is_set():
        token = callers.user("R8000")
        bundle = order(flow.gp[0], flow.gp[1]["role_profile_id"], pharmacy)
        headers = {"Authorization": f"Bearer {token}"}
        prepared = writer.send(
            "POST",
            f"{EPS}/$prepare",
            retry=True,
            json=bundle,
            headers={**headers, "X-Request-ID": str(uuid.uuid4())},
        )
        assert prepared.status_code == 200, prepared.text
        submitted = writer.send(
            "POST",
            f"{EPS}/$process-message",
            retry=True,
            json=flow.sign(bundle, prepared.json()),
            headers={**headers, "X-Request-ID": str(uuid.uuid4())},
        )
        assert submitted.status_code == 200, submitted.text
        with writer.ledger.lock:
            writer.ledger.prescriptions.append(
                bundle["entry"][1]["resource"]["groupIdentifier"]["value"]
            )


def _mesh_worker(writer: Writer, worker: int) -> None:
    tokens = AuthTokenGenerator(b"TestKey", "ALICE", "password")
    count = 0
    while not writer.stop.is_set():
        count += 1
        body = f"crash test {worker}/{count} ".encode() * 64
        try:
            response = writer.send(
                "POST",
                "/messageexchange/ALICE/outbox",
                retry=False,
                content=body[:1024],
                headers={
                    "Authorization": tokens.generate_token(),
                    "mex-From": "ALICE",
                    "mex-To": "BOB",
                    "mex-WorkflowID": "CRASH_TEST",
                    "mex-LocalID": f"crash-{worker}-{count}",
                    "Content-Type": "application/octet-stream",
                    "Accept": V2,
                },
            )
        except ServerGone:
            return
        except httpx.TransportError:
            with writer.ledger.lock:
                writer.ledger.mesh_in_doubt += 1
            time.sleep(0.2)
            continue
        if response.status_code == 503:
            continue
        assert response.status_code == 202, response.text
        with writer.ledger.lock:
            writer.ledger.mesh_sent[response.json()["message_id"]] = body[:1024]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with throwaway_database("crash") as url:
        yield url


def _verify(server: Server, callers: Callers, ledger: Ledger) -> None:
    token = callers.user("R8000")
    for nhs, genders in ledger.patients.items():
        response = httpx.get(
            f"{server.url}{PDS}/Patient/{nhs}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
        )
        assert response.status_code == 200
        version = int(response.headers["etag"].split('"')[1])
        assert version == 1 + len(genders), f"{len(genders)} patches gave version {version}"
        if genders:
            assert response.json()["gender"] == genders[-1]
    for prescription_id in ledger.prescriptions:
        response = httpx.get(
            f"{server.url}{EPS}/Task",
            params={"group-identifier": prescription_id},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
        )
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 1, prescription_id
    tokens = AuthTokenGenerator(b"TestKey", "BOB", "password")
    inbox = httpx.get(
        f"{server.url}/messageexchange/BOB/inbox",
        params={"max_results": "5000"},
        headers={"Authorization": tokens.generate_token(), "Accept": V2},
    ).json()["messages"]
    assert len(inbox) == len(set(inbox))
    assert set(ledger.mesh_sent) <= set(inbox), "an accepted MESH message was lost"
    assert len(inbox) - len(ledger.mesh_sent) <= ledger.mesh_in_doubt
    for message_id in inbox:
        body = httpx.get(
            f"{server.url}/messageexchange/BOB/inbox/{message_id}",
            headers={"Authorization": tokens.generate_token()},
        )
        assert body.status_code == 200, body.text
        if message_id in ledger.mesh_sent:
            assert body.content == ledger.mesh_sent[message_id]
        else:
            assert body.content.startswith(b"crash test ")
            assert len(body.content) == 1024


def test_nothing_acknowledged_is_lost_across_sigkills(
    tmp_path: Path, store_url: str | None
) -> None:
    server = Server(tmp_path / "store", tmp_path / "server.log", patients=20, store_url=store_url)
    server.start(first=True)
    callers = Callers(server.url, server.data_dir)
    flow = Flow(server.data_dir, server.url)
    ledger = Ledger()
    stop = threading.Event()
    writer = Writer(lambda: server.url, stop, ledger)
    errors: list[BaseException] = []

    def guarded(target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except ServerGone:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [
        *(
            threading.Thread(target=guarded, args=(_pds_worker, writer, callers, i))
            for i in range(3)
        ),
        threading.Thread(target=guarded, args=(_eps_worker, writer, callers, flow)),
        *(threading.Thread(target=guarded, args=(_mesh_worker, writer, i)) for i in range(2)),
    ]
    rng = random.Random(7)  # noqa: S311 - timing of the faults, not security
    try:
        for thread in threads:
            thread.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.5, 3.0))
            server.kill(signal.SIGKILL)
            server.start(first=False)
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=RETRY_SECONDS + 30)
        assert not errors, errors
        _verify(server, callers, ledger)
    finally:
        stop.set()
        server.stop()
    verified = subprocess.run(
        [*CLI, "audit", "verify", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    patches = sum(len(g) for g in ledger.patients.values())
    report(
        f"crash-{'postgres' if store_url else 'sqlite'}",
        {
            "sigkills": KILLS,
            "pds_patches_acknowledged": patches,
            "eps_prescriptions_acknowledged": len(ledger.prescriptions),
            "mesh_messages_acknowledged": len(ledger.mesh_sent),
            "mesh_sends_in_doubt": ledger.mesh_in_doubt,
            "client_retries": ledger.retries,
            "lost": 0,
            "duplicated": 0,
            "audit_verify": verified.stdout.strip().splitlines()[-1],
        },
    )
    assert patches > 0
    assert ledger.prescriptions
    assert ledger.mesh_sent
