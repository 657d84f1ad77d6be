"""GET /Patient/{id} through the ASGI app, with tokens from the real token endpoint."""

from __future__ import annotations

import json

import httpx
import pytest

from openspine.app import build_platform
from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.ports import AuditChain
from openspine.settings import Settings
from tests.api.helpers import app_token, user_token
from tests.conftest import PATIENT_BASE, Clients, pds_stub

pytestmark = pytest.mark.anyio
GP = "R8000"


def coding(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["details"]["coding"][0]["system"] == (
        "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
    )
    return dict(issue["details"]["coding"][0])


async def read(
    http: httpx.AsyncClient, token: str, nhs_number: str, **headers: str
) -> httpx.Response:
    import uuid

    return await http.get(
        f"{PATIENT_BASE}/Patient/{nhs_number}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4()), **headers},
    )


async def test_ordinary_patient_with_etag(client: httpx.AsyncClient, clients: Clients) -> None:
    response = await read(client, await user_token(client, clients, GP), "9000000009")
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    patient = response.json()
    assert patient["id"] == "9000000009"
    assert patient["name"][0]["family"] == "Smith"
    assert patient["address"][0]["postalCode"] == "LS1 6AE"
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "Y12345"


async def test_matches_the_nhs_sandbox_characteristics(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    stub = pds_stub("patientResponses/patient_9000000009.json")
    ours = (await read(client, await user_token(client, clients, GP), "9000000009")).json()
    for field in ("id", "gender", "birthDate", "deceasedDateTime", "multipleBirthInteger"):
        assert ours[field] == stub[field], field
    assert ours["name"][0]["family"] == stub["name"][0]["family"]
    assert ours["address"][0]["postalCode"] == stub["address"][0]["postalCode"]
    assert ours["meta"]["versionId"] == stub["meta"]["versionId"]


async def test_restricted_patient_matches_sandbox_redaction(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    stub = pds_stub("patientResponses/patient_9000000025.json")
    ours = (await read(client, await user_token(client, clients, GP), "9000000025")).json()
    assert set(ours) == set(stub)
    for hidden in ("address", "telecom", "generalPractitioner"):
        assert hidden not in ours
    assert ours["meta"]["security"][0]["code"] == "R"
    assert ours["name"][0]["family"] == stub["name"][0]["family"]


async def test_restricted_patient_hidden_from_applications_too(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    response = await read(client, await app_token(client, clients), "9000000025")
    assert response.status_code == 200
    assert "address" not in response.json()
    assert b"LS1 6AE" not in response.content


async def test_superseded_number_returns_the_survivor(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    response = await read(client, await user_token(client, clients, GP), "9000000041")
    assert response.status_code == 200
    assert response.json()["id"] == "9000000009"


@pytest.mark.parametrize(
    ("nhs_number", "status", "code"),
    [
        ("9000000000", 400, "INVALID_RESOURCE_ID"),
        ("900000000", 400, "INVALID_RESOURCE_ID"),
        ("900000000X", 400, "INVALID_RESOURCE_ID"),
        ("9111231130", 404, "RESOURCE_NOT_FOUND"),
        ("9000000068", 404, "INVALIDATED_RESOURCE"),
    ],
)
async def test_errors_use_spine_codes(
    client: httpx.AsyncClient, clients: Clients, nhs_number: str, status: int, code: str
) -> None:
    response = await read(client, await user_token(client, clients, GP), nhs_number)
    assert response.status_code == status
    assert coding(response)["code"] == code


async def test_error_payload_matches_the_nhs_stub(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    stub = pds_stub("errorResponses/INVALIDATED_RESOURCE.json")
    response = await read(client, await user_token(client, clients, GP), "9000000068")
    assert response.json() == stub


async def test_role_without_the_activity_is_forbidden(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    response = await read(client, await user_token(client, clients, "R8015"), "9000000009")
    assert response.status_code == 403
    assert coding(response)["code"] == "ACCESS_DENIED"


@pytest.mark.parametrize("job_role", ["R8000", "R8001", "R8003", "R8008", "R5250"])
async def test_roles_with_view_demographics_may_read(
    client: httpx.AsyncClient, clients: Clients, job_role: str
) -> None:
    response = await read(client, await user_token(client, clients, job_role), "9000000017")
    assert response.status_code == 200


async def test_every_read_is_audited_in_the_access_chain(
    client: httpx.AsyncClient, clients: Clients, demo_settings: Settings
) -> None:
    token = await user_token(client, clients, GP)
    platform = build_platform(demo_settings)
    await platform.store.start()
    try:
        before, _ = await platform.store.audit_head(AuditChain.ACCESS)
        changes_before = await platform.store.audit_head(AuditChain.MAIN)
        await read(client, token, "9000000017", **{"X-Correlation-ID": "corr-42"})
        await read(client, token, "9111231130")
        after, _ = await platform.store.audit_head(AuditChain.ACCESS)
        assert after == before + 2
        assert await platform.store.audit_head(AuditChain.MAIN) == changes_before
        rows = [row async for row in platform.store.audit_rows(AuditChain.ACCESS)][-2:]
        first, second = (json.loads(row.payload) for row in rows)
        assert first["action"] == "pds.patient.read"
        assert first["patients"] == ["9000000017"]
        assert first["outcome"] == "success"
        assert first["correlation_id"] == "corr-42"
        assert first["who"]["role_profile"] == clients.user(GP)[1]
        assert second["outcome"] == "failure"
        assert (await verify_chain(platform.store, AuditChain.ACCESS)).ok
    finally:
        await platform.store.close()


async def test_metadata_is_a_capability_statement(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PATIENT_BASE}/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["rest"][0]["resource"][0]["type"] == "Patient"
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    CapabilityStatement.model_validate(statement)
    codes = {i["code"] for i in statement["rest"][0]["resource"][0]["interaction"]}
    assert codes == {"read", "search-type", "patch", "create"}


async def test_emitted_patient_is_valid_fhir_r4(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    from fhir.resources.R4B.patient import Patient

    response = await read(client, await user_token(client, clients, GP), "9000000009")
    Patient.model_validate_json(response.content)
