"""The request path every service shares: ids, health, metrics, errors, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from openspine.app import create_app
from openspine.platform.audit.events import AuditAction, AuditOutcome, audit_record
from openspine.platform.http import SecuredRoute, audit_context, fhir_response
from openspine.platform.idempotency import (
    PreparedWrite,
    WrittenResponse,
    fingerprint,
    run_idempotent,
)
from openspine.platform.security.principal import Principal
from openspine.platform.security.rbac import Permission
from openspine.platform.storage.ports import PutResource, WriteSet
from openspine.settings import Settings
from tests.api.helpers import app_token, user_token
from tests.conftest import BASE_URL, PATIENT_BASE, Clients

pytestmark = pytest.mark.anyio


def code_of(response: httpx.Response) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


async def test_missing_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PATIENT_BASE}/Patient/9000000009")
    assert response.status_code == 400
    assert code_of(response) == "MISSING_VALUE"


async def test_invalid_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{PATIENT_BASE}/Patient/9000000009", headers={"X-Request-ID": "1234"}
    )
    assert response.status_code == 400
    assert code_of(response) == "INVALID_VALUE"
    assert "X-Request-ID" in response.json()["issue"][0]["diagnostics"]


async def test_ids_are_echoed(client: httpx.AsyncClient, clients: Clients) -> None:
    request_id = str(uuid.uuid4())
    response = await client.get(
        f"{PATIENT_BASE}/Patient/9000000009",
        headers={
            "X-Request-ID": request_id,
            "X-Correlation-ID": "trace-1",
            "Authorization": f"Bearer {await app_token(client, clients)}",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    assert response.headers["x-correlation-id"] == "trace-1"


async def test_status_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_status")).json()["status"] == "pass"
    await client.get(
        f"{PATIENT_BASE}/Patient/9000000009", headers={"X-Request-ID": str(uuid.uuid4())}
    )
    metrics = (await client.get("/metrics")).text
    assert 'route="/personal-demographics/FHIR/R4/Patient/{nhs_number}"' in metrics
    assert "9000000009" not in metrics


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    response = await client.delete(f"{PATIENT_BASE}/metadata")
    assert response.status_code == 405
    assert code_of(response) == "INVALID_METHOD"


# -- a test-only write route, built from the same platform parts a service uses -------------


@pytest.fixture
async def write_client(demo_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(demo_settings)
    store = app.state.platform.store
    counter = {"n": 0}

    async def write(request: Request, principal: Principal) -> Response:
        body = await request.body()

        async def prepare() -> PreparedWrite:
            counter["n"] += 1
            await asyncio.sleep(0.01)  # let a racing retry arrive while this one prepares
            item_id = str(uuid.uuid4())
            return PreparedWrite(
                WriteSet(
                    puts=[PutResource("test.Item", item_id, 1, body, None)],
                    audit=[
                        audit_record(
                            action=AuditAction.TEST_WRITE,
                            outcome=AuditOutcome.SUCCESS,
                            principal=principal,
                            context=audit_context(request),
                        )
                    ],
                ),
                WrittenResponse(
                    201, orjson.dumps({"id": item_id}), {"Location": f"/test/items/{item_id}"}
                ),
            )

        result = await run_idempotent(
            store,
            principal,
            request.headers.get("x-request-id"),
            fingerprint(request.method, request.url.path, body),
            prepare,
        )
        return fhir_response(result.body, result.status, result.headers)

    async def boom(request: Request, principal: Principal) -> Response:
        raise RuntimeError("secret internal detail 9000000009")

    app.router.routes.append(SecuredRoute("/test/items", write, permission=None, methods=["POST"]))
    app.router.routes.append(SecuredRoute("/test/boom", boom, permission=None))
    app.state.counter = counter
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
    ):
        http.app_state = app.state  # type: ignore[attr-defined]
        yield http


async def test_unexpected_error_is_a_generic_500(
    write_client: httpx.AsyncClient, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    token = await app_token(write_client, clients)
    response = await write_client.get("/test/boom", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "secret" not in response.text
    assert "9000000009" not in caplog.text
    assert "RuntimeError" in caplog.text


async def test_retry_with_same_request_id_replays_and_writes_once(
    write_client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await app_token(write_client, clients)
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    first = await write_client.post("/test/items", content=b'{"a":1}', headers=headers)
    second = await write_client.post("/test/items", content=b'{"a":1}', headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.headers["location"] == second.headers["location"]
    assert write_client.app_state.counter["n"] == 1  # type: ignore[attr-defined]


async def test_racing_retries_produce_one_effect(
    write_client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await app_token(write_client, clients)
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    store = write_client.app_state.platform.store  # type: ignore[attr-defined]
    before = await store.count("test.Item")
    responses = await asyncio.gather(
        *(write_client.post("/test/items", content=b'{"b":2}', headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await store.count("test.Item") == before + 1


async def test_same_request_id_for_a_different_request_is_refused(
    write_client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await app_token(write_client, clients)
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    assert (
        await write_client.post("/test/items", content=b"1", headers=headers)
    ).status_code == 201
    response = await write_client.post("/test/items", content=b"2", headers=headers)
    assert response.status_code == 409
    assert response.json()["resourceType"] == "OperationOutcome"


def test_permissions_are_declared_on_every_secured_route(demo_settings: Settings) -> None:
    app = create_app(demo_settings)
    secured = [r for r in app.routes if isinstance(r, SecuredRoute)]
    assert secured
    assert all(isinstance(r.permission, Permission) for r in secured)


async def test_oversized_bodies_are_refused_per_route(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    """The app admits a MESH chunk (101 MiB); small-body routes refuse far less, early."""
    form = await client.post(
        "/oauth2/token",
        content=b"a" * (17 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413
    assert form.json()["resourceType"] == "OperationOutcome"
    patch = await client.patch(
        "/personal-demographics/FHIR/R4/Patient/9000000009",
        content=b"{" + b" " * (300 * 1024) + b"}",
        headers={
            "Content-Type": "application/json-patch+json",
            "X-Request-ID": "60e0b220-8136-4ca5-ae46-1d97ef59d068",
            "If-Match": 'W/"2"',
            "Authorization": f"Bearer {await user_token(client, clients, 'R8000')}",
        },
    )
    assert patch.status_code == 413
