"""The authorisation matrix: every route by every kind of caller → allowed or denied.

Two tables must agree with each other and with the running app:
- GENERATED from what the code declares: the permission on each ``SecuredRoute`` and the
  permissions each caller's token carries (the national baseline policy for role profiles, the
  directory registration for the backend app, the patient-access set for patients), with the
  one handler rule the route declaration cannot show (a patient only ever sees their own record);
- EXPECTED, written out by hand below from the RBAC design (docs/security.md).
Then each cell is requested through the ASGI app: allowed → neither 401 nor 403; denied → 401
(no usable token) or 403 (a valid token without the right). Every response passes the
data-protection scan.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from mesh_client import AuthTokenGenerator
from starlette.applications import Starlette
from starlette.routing import Route

from openspine.app import create_app
from openspine.platform.http import SecuredRoute
from openspine.platform.security.keys import generate_private_key, load_private_key
from openspine.platform.security.rbac import (
    BASELINE_POLICY,
    Permission,
    permissions_for_activities,
)
from openspine.platform.security.tokens import PATIENT_PERMISSIONS
from openspine.settings import Secret, Settings
from tests.api.helpers import app_token, patient_token, user_token
from tests.conftest import BASE_URL, Clients
from tests.reliability.protection import exposures

pytestmark = pytest.mark.anyio

PDS = "/personal-demographics/FHIR/R4"
EPS = "/electronic-prescriptions/FHIR/R4"
SDS = "/spine-directory/FHIR/R4"
MESH = "/messageexchange"

ROLES = {
    "gp": "R8000",
    "nurse": "R8001",
    "pharmacist": "R8003",
    "admin": "R8008",
    "privacy-officer": "R5250",
    "system-support": "R8015",
}
#: Callers whose token is valid: the demo role profiles, the backend app, and a patient
#: (9000000017) acting on another patient's record (9000000009).
VALID = (*ROLES, "app", "other-patient")
#: Callers with no usable token: always 401.
UNUSABLE = ("no-token", "expired", "wrong-audience", "foreign-key", "tampered")
CALLERS = (*VALID, *UNUSABLE)

READERS = frozenset({"gp", "nurse", "pharmacist", "admin", "privacy-officer", "app"})
AMENDERS = frozenset({"gp", "nurse", "admin"})
EVERY_ROLE = frozenset({*ROLES, "app"})

#: The hand-written table: (method, route path) → the callers allowed.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", f"{PDS}/Patient"): READERS,
    ("POST", f"{PDS}/Patient"): AMENDERS,
    # No NHS number in the path: 400 INVALID_RESOURCE_ID to anyone who may update (patients too).
    ("PATCH", f"{PDS}/Patient/"): AMENDERS | {"other-patient"},
    ("GET", f"{PDS}/Patient/{{nhs_number}}"): READERS,
    ("PATCH", f"{PDS}/Patient/{{nhs_number}}"): AMENDERS,
    ("GET", f"{PDS}/Patient/{{nhs_number}}/RelatedPerson"): READERS,
    ("GET", f"{SDS}/Device"): EVERY_ROLE,
    ("GET", f"{SDS}/Endpoint"): EVERY_ROLE,
    ("GET", f"{SDS}/Organization"): EVERY_ROLE,
    ("GET", f"{SDS}/Organization/{{ods_code}}"): EVERY_ROLE,
    ("GET", f"{SDS}/PractitionerRole"): EVERY_ROLE,
    ("GET", f"{SDS}/Practitioner/{{user_id}}"): EVERY_ROLE,
    ("POST", f"{EPS}/$prepare"): frozenset({"gp"}),
    ("POST", f"{EPS}/$process-message"): frozenset({"gp", "pharmacist"}),
    ("POST", f"{EPS}/$verify-signature"): frozenset({"gp", "pharmacist"}),
    ("GET", f"{EPS}/Task"): frozenset({"gp", "pharmacist"}),
    ("POST", f"{EPS}/Task"): frozenset({"pharmacist"}),
    ("POST", f"{EPS}/Task/$release"): frozenset({"pharmacist"}),
    ("POST", f"{EPS}/Claim"): frozenset({"pharmacist"}),
}

#: $process-message checks a second permission by the message's event (docs/security.md).
EVENTS = {
    "prescription-order": frozenset({"gp"}),
    "prescription-order-update": frozenset({"gp"}),
    "dispense-notification": frozenset({"pharmacist"}),
}

#: Routes outside the bearer-token matrix, and why.
NOT_BEARER = {
    "/oauth2/token": "the token endpoint authenticates clients itself (tests/api/test_oauth.py)",
    "/admin/reset": "MESH sandbox mode only, which is never on in production",
}
PUBLIC = ("/_status", "/_ping", "/metrics", "/oauth2/jwks", "/openapi.json", f"{PDS}/metadata")

PATH_VALUES = {
    "nhs_number": "9000000009",
    "ods_code": "Y12345",
    "user_id": "555000000001",
    "mailbox_id": "ALICE",
    "message_id": "20261123000000000000_ABCDEF",
    "chunk_number": "1",
    "workflow_id": "TESTWORKFLOW",
    "local_id": "x",
}


def message(event: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            {
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {
                        "system": "https://fhir.nhs.uk/CodeSystem/message-event",
                        "code": event,
                    },
                }
            }
        ],
    }


def _permissions(caller: str, clients: Clients) -> frozenset[Permission]:
    if caller in ROLES:
        return permissions_for_activities(BASELINE_POLICY[ROLES[caller]])
    if caller == "app":
        app = clients.app("openspine-demo-backend")
        return frozenset(Permission(p) for p in app["application_permissions"])
    if caller == "other-patient":
        return PATIENT_PERMISSIONS
    return frozenset()


def generated(route: SecuredRoute, caller: str, clients: Clients) -> bool:
    """Allowed, by the route's declared permission and the caller's token alone."""
    if caller in UNUSABLE:
        return False
    if caller == "other-patient" and "{nhs_number}" in route.path:
        return False  # the handler rule: a patient acts on their own record only
    return route.permission is None or route.permission in _permissions(caller, clients)


@dataclass
class Matrix:
    app: Starlette
    http: httpx.AsyncClient


@pytest.fixture
async def matrix(demo_settings: Settings) -> AsyncIterator[Matrix]:
    settings = dataclasses.replace(
        demo_settings, mesh_sandbox=True, mesh_shared_key=Secret("TestKey")
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield Matrix(app, http)


def _resign(token: str, key: Any, **changes: Any) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    return jwt.encode({**claims, **changes}, key, algorithm="RS512", headers=header)


async def _tokens(
    http: httpx.AsyncClient, clients: Clients, settings: Settings
) -> dict[str, str | None]:
    tokens: dict[str, str | None] = {
        name: await user_token(http, clients, code) for name, code in ROLES.items()
    }
    tokens["app"] = await app_token(http, clients)
    tokens["other-patient"] = await patient_token(http, clients, "9000000017")
    platform_key = load_private_key(settings.token_signing_key_file)
    good = tokens["gp"]
    assert good is not None
    tokens["no-token"] = None
    tokens["expired"] = _resign(good, platform_key, exp=int(time.time()) - 60)
    tokens["wrong-audience"] = _resign(good, platform_key, aud="https://elsewhere.example")
    tokens["foreign-key"] = _resign(good, generate_private_key())
    head, payload, signature = good.split(".")
    tokens["tampered"] = f"{head}.{payload[:-3]}AAA.{signature}"
    return tokens


def _request(
    route: Route, method: str, token: str | None, body: Any = None
) -> tuple[str, str, dict[str, str], Any]:
    path = route.path_format
    for name, value in PATH_VALUES.items():
        path = path.replace(f"{{{name}}}", value)
    headers = {"X-Request-ID": str(uuid.uuid4())}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if method == "PATCH":
        headers["If-Match"] = 'W/"1"'
        headers["Content-Type"] = "application/json-patch+json"
    if body is None and method in ("POST", "PATCH", "PUT"):
        body = {"patches": []} if method == "PATCH" else {}
    return method, path, headers, body


async def _call(
    http: httpx.AsyncClient, route: Route, method: str, token: str | None, body: Any = None
) -> httpx.Response:
    verb, path, headers, content = _request(route, method, token, body)
    response = await http.request(verb, path, headers=headers, json=content)
    assert response.status_code < 500, f"{verb} {path}: {response.text[:300]}"
    assert exposures(response.content, None) == [], f"{verb} {path} exposed restricted data"
    return response


def _secured(app: Any) -> list[tuple[SecuredRoute, str]]:
    return [
        (route, method)
        for route in app.routes
        if isinstance(route, SecuredRoute)
        for method in sorted((route.methods or set()) - {"HEAD"})
    ]


async def test_generated_matrix_matches_the_hand_written_table(
    matrix: Matrix, clients: Clients
) -> None:
    secured = _secured(matrix.app)
    assert {(m, r.path) for r, m in secured} == set(EXPECTED), "a route has no expectation"
    for route, method in secured:
        allowed = {c for c in CALLERS if generated(route, c, clients)}
        assert allowed == EXPECTED[(method, route.path)], f"{method} {route.path}"


async def test_every_secured_route_allows_and_denies_as_the_table_says(
    matrix: Matrix, clients: Clients, demo_settings: Settings
) -> None:
    tokens = await _tokens(matrix.http, clients, demo_settings)
    wrong = []
    cells = 0
    for route, method in _secured(matrix.app):
        for caller in CALLERS:
            response = await _call(matrix.http, route, method, tokens[caller])
            cells += 1
            allowed = caller in EXPECTED[(method, route.path)]
            denied_as = 401 if caller in UNUSABLE else 403
            if allowed and response.status_code in (401, 403):
                wrong.append(f"{caller} {method} {route.path}: {response.status_code} (allow)")
            if not allowed and response.status_code != denied_as:
                wrong.append(
                    f"{caller} {method} {route.path}: {response.status_code}, not {denied_as}"
                )
    assert not wrong, "\n".join(wrong)
    assert cells == len(EXPECTED) * len(CALLERS)


async def test_process_message_checks_the_event_permission(
    matrix: Matrix, clients: Clients, demo_settings: Settings
) -> None:
    tokens = await _tokens(matrix.http, clients, demo_settings)
    route = next(r for r, m in _secured(matrix.app) if r.path.endswith("$process-message"))
    for event, allowed in EVENTS.items():
        for caller in VALID:
            response = await _call(matrix.http, route, "POST", tokens[caller], message(event))
            ok = caller in allowed
            assert (response.status_code != 403) == ok, f"{caller} {event}: {response.text}"


async def test_mesh_and_public_routes(
    matrix: Matrix, clients: Clients, demo_settings: Settings
) -> None:
    """MESH takes only its own NHSMESH token: a bearer token of any kind is refused (403);
    the public routes answer everyone."""
    tokens = await _tokens(matrix.http, clients, demo_settings)
    app = matrix.app
    seen = set()
    for route in app.routes:
        if not isinstance(route, Route) or isinstance(route, SecuredRoute):
            continue
        if route.path in NOT_BEARER or not route.include_in_schema:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            seen.add(route.path)
            for caller in ("no-token", "gp", "app", "other-patient"):
                response = await _call(matrix.http, route, method, tokens[caller])
                if route.path.startswith(MESH) and "{mailbox_id}" in route.path:
                    assert response.status_code == 403, f"{caller} {method} {route.path}"
                else:
                    assert response.status_code not in (401, 403), f"{method} {route.path}"
        if route.path.startswith(MESH) and "{mailbox_id}" in route.path:
            verb = sorted((route.methods or set()) - {"HEAD"})[0]
            _, path, _, _ = _request(route, verb, None)
            token = AuthTokenGenerator(b"TestKey", "ALICE", "password").generate_token()
            response = await matrix.http.request(verb, path, headers={"Authorization": token})
            assert response.status_code != 403, f"NHSMESH {verb} {route.path}"
    assert set(PUBLIC) <= seen
