"""Races against a live server: many clients on one patient, and retries racing their original.

- Rounds of 12 clients patching the same patient from the same version: exactly one wins each
  round, every loser gets 409 RESOURCE_VERSION_MISMATCH, and the version counts the winners
  (no lost update).
- 12 copies of one PATCH (same X-Request-ID) sent at once: one effect, 12 identical answers.
- 12 copies of one EPS submission (same X-Request-ID) at once: one prescription.
The release race of two pharmacies is in tests/api/test_eps_dispensing.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.eps import Flow, order

from tests.api.pds_helpers import new_patient
from tests.reliability.conftest import Live, report

pytestmark = pytest.mark.e2e

PDS = "/personal-demographics/FHIR/R4"
EPS = "/electronic-prescriptions/FHIR/R4"
CLIENTS = 12
ROUNDS = 8


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls on their own threads, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(r, httpx.Response) for r in results), results
    return results


def _patient(live: Live, family: str) -> tuple[str, str, int]:
    token = live.callers.user("R8000")
    created = httpx.post(
        f"{live.url}{PDS}/Patient",
        json=new_patient(family),
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    return token, created.json()["id"], int(created.headers["etag"].split('"')[1])


def _patch(live: Live, token: str, nhs: str, version: int, gender: str, request_id: str) -> Any:
    return lambda: httpx.patch(
        f"{live.url}{PDS}/Patient/{nhs}",
        json={"patches": [{"op": "replace", "path": "/gender", "value": gender}]},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Request-ID": request_id,
            "If-Match": f'W/"{version}"',
            "Content-Type": "application/json-patch+json",
        },
        timeout=30,
    )


def test_one_winner_per_round_and_no_lost_update(live: Live) -> None:
    token, nhs, version = _patient(live, "Racewinner")
    start = version
    losers = 0
    for round_ in range(ROUNDS):
        gender = "male" if round_ % 2 == 0 else "female"
        calls = [
            _patch(live, token, nhs, version, gender, str(uuid.uuid4())) for _ in range(CLIENTS)
        ]
        responses = _at_once(calls)
        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.status_code for r in responses]
        for loser in responses:
            if loser.status_code == 200:
                continue
            assert loser.status_code == 409, loser.text
            code = loser.json()["issue"][0]["details"]["coding"][0]["code"]
            assert code == "RESOURCE_VERSION_MISMATCH"
            losers += 1
        version = int(winners[0].headers["etag"].split('"')[1])
    final = httpx.get(
        f"{live.url}{PDS}/Patient/{nhs}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )
    assert int(final.headers["etag"].split('"')[1]) == start + ROUNDS
    report(
        "concurrency",
        {"rounds": ROUNDS, "clients": CLIENTS, "winners": ROUNDS, "losers_409": losers},
    )


def test_racing_retries_of_one_patch_have_one_effect(live: Live) -> None:
    token, nhs, version = _patient(live, "Raceretry")
    request_id = str(uuid.uuid4())
    responses = _at_once(
        [_patch(live, token, nhs, version, "male", request_id) for _ in range(CLIENTS)]
    )
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert {r.headers["etag"] for r in responses} == {f'W/"{version + 1}"'}
    final = httpx.get(
        f"{live.url}{PDS}/Patient/{nhs}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())},
    )
    assert final.headers["etag"] == f'W/"{version + 1}"'


def test_racing_retries_of_one_prescription_create_one(live: Live) -> None:
    flow = Flow(live.server.data_dir, live.url)
    token = live.callers.user("R8000")
    bundle = order(flow.gp[0], flow.gp[1]["role_profile_id"], flow.pharmacist["ods_code"])
    auth = {"Authorization": f"Bearer {token}"}
    prepared = httpx.post(
        f"{live.url}{EPS}/$prepare",
        json=bundle,
        headers={**auth, "X-Request-ID": str(uuid.uuid4())},
    )
    assert prepared.status_code == 200, prepared.text
    signed = flow.sign(bundle, prepared.json())
    request_id = str(uuid.uuid4())
    responses = _at_once(
        [
            lambda: httpx.post(
                f"{live.url}{EPS}/$process-message",
                json=signed,
                headers={**auth, "X-Request-ID": request_id},
                timeout=30,
            )
            for _ in range(CLIENTS)
        ]
    )
    assert {r.status_code for r in responses} == {200}, [r.text[:200] for r in responses]
    prescription_id = bundle["entry"][1]["resource"]["groupIdentifier"]["value"]
    tracked = httpx.get(
        f"{live.url}{EPS}/Task",
        params={"group-identifier": prescription_id},
        headers={**auth, "X-Request-ID": str(uuid.uuid4())},
    )
    assert tracked.json()["total"] == 1
