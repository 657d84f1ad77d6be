"""Property-based fuzzing of every operation of ``/openapi.json`` against a live server.

schemathesis generates valid and invalid requests (positive and negative modes) for every path,
method, parameter and body the document describes, sent with real tokens (or a fresh NHSMESH
token for MESH's mailbox routes) so that they reach the handlers. Every response must be: no
5xx; an error as an OperationOutcome (MESH: its own JSON error body, or none for a failed
authentication, as the MESH contract says); no stack trace or internal detail; and nothing of a
restricted patient's location (the data-protection scan). The request count is recorded in
docs/reliability.md; ``OPENSPINE_FUZZ_EXAMPLES`` sets how many examples each operation gets.
"""

from __future__ import annotations

import json
import os
import random
import re
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from mesh_client import AuthTokenGenerator

from tests.reliability.conftest import FUZZ_EXAMPLES, FUZZ_RANDOM, Live, report

pytestmark = pytest.mark.e2e

MESH_MAILBOX = "ALICE"
KNOWN_PATIENTS = ("9000000009", "9000000017", "9000000025", "9000000033", "9000000041")
#: Text that must never reach a client: interpreter, driver and file-system internals.
INTERNALS = re.compile(r"Traceback|File \"|\.py\b|sqlite3|psycopg|site-packages|/src/openspine")


def _operations(live: Live) -> list[Any]:
    """Every operation of the live server's own ``/openapi.json`` (the running app's routes)."""
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    # An operation the schema cannot describe has no ``ok()``: the test fails there, loudly.
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


TOKENS = {
    "eps:prescription:prescribe": "R8000",
    "eps:prescription:dispense": "R8003",
}


def _headers(live: Live, case: Any) -> dict[str, str]:
    operation = case.operation.definition.raw
    if case.path.startswith("/messageexchange/{mailbox_id}"):
        case.path_parameters["mailbox_id"] = MESH_MAILBOX
        token = AuthTokenGenerator(b"TestKey", MESH_MAILBOX, "password").generate_token()
        return {"Authorization": token}
    permission = operation.get("x-openspine-permission")
    if "security" not in operation:
        return {}
    # Not for security: picks a real patient for half the generated NHS numbers.
    rng = random.Random(repr(case.path_parameters) + repr(case.query))  # noqa: S311
    if "nhs_number" in (case.path_parameters or {}) and rng.random() < 0.5:
        case.path_parameters["nhs_number"] = rng.choice(KNOWN_PATIENTS)
    if permission is None:
        return {"Authorization": f"Bearer {live.callers.app()}"}
    if rng.random() < 0.15 and permission.startswith("pds:patient:"):
        return {"Authorization": f"Bearer {live.callers.app()}"}
    return {"Authorization": f"Bearer {live.callers.user(TOKENS.get(permission, 'R8000'))}"}


#: What RFC 9110 allows in a header field: a token for the name; visible ASCII, obs-text, space
#: and tab for the value. A control character (DEL included) is not allowed anywhere.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def forbidden_by_http(headers: Any) -> bool:
    """Whether a request's headers break HTTP's own grammar (schemathesis's negative mode makes
    such values). granian's HTTP layer (hyper) refuses such a request with a bare 400 before any
    application sees it, as it refuses any request it cannot parse."""
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if not _TOKEN.match(str(name)) or _CONTROL.search(text):
            return True
    return False


def _check(path: str, method: str, response: httpx.Response | Any) -> None:
    status = response.status_code
    body: bytes = response.content
    assert status < 500, f"{method} {path} → {status}: {body[:300]!r}"
    text = body.decode("utf-8", "replace")
    assert not INTERNALS.search(text), f"{method} {path} leaked internals: {text[:300]}"
    if status < 400 or method == "HEAD":
        return
    if status == 400 and not body and forbidden_by_http(response.request.headers):
        return  # refused by the HTTP layer, not by OpenSpine: there is no app to answer it
    if path.startswith("/messageexchange"):
        if status == 403 and not body:
            return  # MESH: an authentication failure has no body
        document = json.loads(body)
        assert isinstance(document, dict), text[:300]
        # MESH's own error body; a path no route can match at all (a control character in
        # it, say) gets the platform's OperationOutcome instead.
        mesh_error = document.get("errorEvent") or document.get("detail")
        assert mesh_error or document.get("resourceType") == "OperationOutcome", text[:300]
        return
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):  # schemathesis keeps every value of a header
        content_type = ",".join(content_type)
    assert "json" in content_type, f"{method} {path} → {status} {text[:200]!r}"
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome", text[:300]
    assert outcome["issue"], text[:300]
    assert outcome["issue"][0]["code"], text[:300]


def _fuzz(live: Live, operation: Any, mode: schemathesis.GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        deadline=None,
        suppress_health_check=list(HealthCheck),
        max_examples=FUZZ_EXAMPLES,
        database=None,
        phases=[Phase.generate],  # a failure is reported as found, not shrunk (time)
        # CI draws the same examples every run; `make reliability` draws new ones each time.
        derandomize=not FUZZ_RANDOM,
    )
    def run(case: Any) -> None:
        headers = _headers(live, case)
        response = case.call(base_url=live.url, headers=headers, timeout=60)
        live.recorder.saw(response.status_code, response.content)
        _check(case.formatted_path, case.method, response)

    run()


def test_no_operation_fails_on_generated_input(live: Live) -> None:
    failures = []
    only = os.environ.get("OPENSPINE_FUZZ_ONLY", "")  # e.g. "GET /spine-directory" to debug
    for operation in _operations(live):
        if only not in operation.label:
            continue
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _fuzz(live, operation, mode)
            except Unsatisfiable:
                continue  # negative mode has nothing to break in an operation with no input
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:600])
    assert not failures, "\n".join(failures)


def test_a_header_http_forbids_gets_a_bare_400_and_any_other_an_outcome(live: Live) -> None:
    """The one refusal without an OperationOutcome: a header value with a control character,
    which the server's HTTP layer refuses before OpenSpine sees the request."""
    url = f"{live.url}/personal-demographics/FHIR/R4/Patient/9000000009"
    token = {"Authorization": f"Bearer {live.callers.user('R8000')}"}
    for value, outcome in (("\x7fcontrol", False), ("caf\xe9", True), ("not-a-uuid", True)):
        response = requests.get(url, headers={**token, "X-Request-ID": value}, timeout=30)
        assert response.status_code == 400, (value, response.text)
        assert forbidden_by_http(response.request.headers) is not outcome
        if outcome:
            assert response.json()["resourceType"] == "OperationOutcome"
        else:
            assert response.content == b""
        _check("/Patient/9000000009", "GET", response)


def test_fuzzing_reached_every_operation(live: Live) -> None:
    document = httpx.get(f"{live.url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert live.recorder.responses >= operations, live.recorder.statuses
    report(
        "fuzzing",
        {
            "operations": operations,
            "requests": live.recorder.responses,
            "statuses": dict(sorted(live.recorder.statuses.items())),
            "server_errors": 0,
            "exposures": len(live.recorder.exposed),
        },
    )
    assert live.recorder.exposed == [], live.recorder.exposed


def test_logs_hold_no_patient_data_after_fuzzing(live: Live) -> None:
    text = live.log_text
    assert not re.search(r"\b9\d{9}\b", text), "an NHS number reached the logs"
    for name in ("Smith", "Smyth", "Jayne", "family=", "given="):
        assert name not in text, f"{name!r} reached the logs"
