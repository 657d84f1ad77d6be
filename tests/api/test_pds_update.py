"""POST and PATCH /Patient: creation with duplicate checks, and updates under the field rules."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.patient import Patient

from openspine.app import build_platform
from openspine.settings import Settings
from tests.api.helpers import app_token, user_token
from tests.api.pds_helpers import create, headers, new_patient, patch
from tests.api.test_pds_read import coding
from tests.conftest import PATIENT_BASE, Clients, reference_file

pytestmark = pytest.mark.anyio
GP = "R8000"
ADMIN = "R8008"


async def fresh(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """A newly created patient nobody else touches (unique family name)."""
    family = "Test" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "abcdefghij"))
    response = await create(http, token, new_patient(family))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_allocates_an_nhs_number(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, ADMIN)
    patient = await fresh(client, token)
    Patient.model_validate(patient)
    nhs = patient["id"]
    assert len(nhs) == 10
    assert nhs.startswith("9")
    got = await client.get(f"{PATIENT_BASE}/Patient/{nhs}", headers=headers(token))
    assert got.status_code == 200
    assert got.headers["etag"] == 'W/"1"'
    assert got.json()["name"][0]["id"]  # the system allocated list item ids


async def test_create_finds_duplicates(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, ADMIN)
    single = new_patient("Smith", "Jane", "2010-10-22")
    response = await create(client, token, single)
    assert response.status_code == 200
    assert coding(response)["code"] == "SINGLE_MATCH"
    assert "9000000009" in response.json()["issue"][0]["diagnostics"]
    twin = new_patient(
        "Twin" + uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "abcdefghij"))
    )
    assert (await create(client, token, twin)).status_code == 201
    # The same request retried is answered with the first answer, not a new record.
    assert (await create(client, token, twin)).status_code == 200
    third = await create(client, token, twin)
    assert coding(third)["code"] == "SINGLE_MATCH"


async def test_create_rules(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, ADMIN)
    body = new_patient("Rules")
    cases: list[tuple[dict[str, Any], str]] = [
        ({**body, "pets": ["cat"]}, "ADDITIONAL_PROPERTIES"),
        ({k: v for k, v in body.items() if k != "birthDate"}, "MISSING_VALUE"),
        ({**body, "extension": []}, "MISSING_VALUE"),
        ({**body, "name": body["name"] * 2}, "TOO_MANY_VALUES_SUBMITTED"),
        ({**body, "gender": "other"}, "UNSUPPORTED_VALUE"),
        ({**body, "birthDate": "2999-01-01"}, "INVALID_UPDATE"),
    ]
    for case, code in cases:
        response = await create(client, token, case)
        assert response.status_code == 400, (code, response.text)
        assert coding(response)["code"] == code
    assert (await create(client, await app_token(client, clients), body)).status_code == 403


async def test_patch_updates_and_versions(
    client: httpx.AsyncClient, clients: Clients, demo_settings: Settings
) -> None:
    token = await user_token(client, clients, GP)
    patient = await fresh(client, token)
    nhs = patient["id"]
    name_id = patient["name"][0]["id"]
    patches: list[dict[str, Any]] = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/deceasedDateTime", "value": "2024-01-01T00:00:00+00:00"},
        {
            "op": "add",
            "path": "/extension/-",
            "value": {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus",
                "extension": [
                    {
                        "url": "deathNotificationStatus",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus",
                                    "code": "1",
                                }
                            ]
                        },
                    }
                ],
            },
        },
        {"op": "add", "path": "/name/-", "value": {"use": "nickname", "given": ["Addy"]}},
        {"op": "replace", "path": "/name/0/id", "value": name_id},
        {"op": "replace", "path": "/name/0/prefix/0", "value": "dr."},
    ]
    response = await patch(client, token, nhs, patches)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    updated = response.json()
    Patient.model_validate(updated)
    assert updated["gender"] == "male"
    assert updated["meta"]["versionId"] == "2"
    assert updated["name"][0]["prefix"] == ["Dr"]
    assert updated["name"][1]["id"]
    assert updated["name"][1]["period"]["start"]
    # Stale version → 409; nothing changed.
    stale = await patch(
        client, token, nhs, [{"op": "replace", "path": "/gender", "value": "female"}]
    )
    assert stale.status_code == 409
    assert coding(stale)["code"] == "RESOURCE_VERSION_MISMATCH"
    # Change events for the death and the name went to the outbox with the update.
    platform = build_platform(demo_settings)
    await platform.store.start()
    try:
        import sqlite3

        path = demo_settings.store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            topics = {
                row[0] for row in conn.execute("SELECT topic FROM outbox WHERE msg_key = ?", (nhs,))
            }
        conn.close()
    finally:
        await platform.store.close()
    assert {"pds.patient.death-notified", "pds.patient.name-changed"} <= topics


async def test_patch_retry_with_same_request_id_is_applied_once(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    nhs = (await fresh(client, token))["id"]
    sent = headers(token, **{"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'})
    body = {"patches": [{"op": "replace", "path": "/gender", "value": "male"}]}
    url = f"{PATIENT_BASE}/Patient/{nhs}"
    first = await client.patch(url, json=body, headers=sent)
    second = await client.patch(url, json=body, headers=sent)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["etag"] == 'W/"2"'


@pytest.mark.parametrize(
    ("patches", "status", "code"),
    [
        ({"nopatches": []}, 400, "INVALID_UPDATE"),
        ([{"op": "move", "path": "/gender", "from": "/x"}], 400, "INVALID_UPDATE"),
        ([{"op": "add", "path": "/pets", "value": "cat"}], 400, "INVALID_UPDATE"),
        ([{"op": "replace", "path": "/id", "value": "9000000009"}], 403, "FORBIDDEN_UPDATE"),
        ([{"op": "remove", "path": "/gender"}], 400, "INVALID_UPDATE"),
        ([{"op": "replace", "path": "/gender", "value": "other"}], 400, "UNSUPPORTED_VALUE"),
        ([{"op": "replace", "path": "/gender", "value": "mal"}], 400, "INVALID_VALUE"),
        ([{"op": "replace", "path": "/birthDate", "value": "2999-01-01"}], 400, "INVALID_UPDATE"),
        (
            [{"op": "add", "path": "/name/0", "value": {"use": "usual", "family": "X"}}],
            400,
            "INVALID_UPDATE",
        ),
        ([{"op": "add", "path": "/name/0/given/-", "value": "Rose"}], 400, "INVALID_UPDATE"),
        ([{"op": "replace", "path": "/name/0/family", "value": "X"}], 400, "INVALID_UPDATE"),
        ([{"op": "remove", "path": "/name/0"}], 400, "INVALID_UPDATE"),
        (
            [{"op": "add", "path": "/name/-", "value": {"use": "usual", "family": "Two"}}],
            400,
            "INVALID_UPDATE",
        ),
        (
            [{"op": "add", "path": "/name/-", "value": {"use": "old", "family": "B@d"}}],
            400,
            "UNSUPPORTED_CHARACTERS_IN_FIELD",
        ),
        (
            [{"op": "add", "path": "/deceasedDateTime", "value": "2020-01-01T00:00:00+00:00"}],
            400,
            "INVALID_UPDATE",
        ),
        (
            [{"op": "add", "path": "/address/-", "value": {"use": "work", "line": ["1 A St"]}}],
            400,
            "UNSUPPORTED_VALUE",
        ),
        (
            [
                {
                    "op": "add",
                    "path": "/address/-",
                    "value": {"use": "temp", "line": ["1 A St"], "text": "Second Home"},
                }
            ],
            400,
            "INVALID_UPDATE",
        ),
        (
            [
                {
                    "op": "add",
                    "path": "/telecom/-",
                    "value": {"system": "email", "use": "home", "value": "nope"},
                }
            ],
            400,
            "INVALID_VALUE",
        ),
        ([{"op": "add", "path": "/multipleBirthInteger", "value": 12}], 400, "INVALID_VALUE"),
    ],
)
async def test_patch_rules_reject_and_change_nothing(
    client: httpx.AsyncClient,
    clients: Clients,
    patches: Any,
    status: int,
    code: str,
) -> None:
    token = await user_token(client, clients, GP)
    nhs = (await fresh(client, token))["id"]
    response = await patch(client, token, nhs, patches)
    assert response.status_code == status, response.text
    assert coding(response)["code"] == code
    after = await client.get(f"{PATIENT_BASE}/Patient/{nhs}", headers=headers(token))
    assert after.headers["etag"] == 'W/"1"'


async def test_test_then_remove_a_list_item(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, GP)
    patient = await fresh(client, token)
    nhs, telecom_id = patient["id"], patient["telecom"][0]["id"]
    wrong = [
        {"op": "test", "path": "/telecom/0/id", "value": "WRONG"},
        {"op": "remove", "path": "/telecom/0"},
    ]
    assert (await patch(client, token, nhs, wrong)).status_code == 400
    right = [
        {"op": "test", "path": "/telecom/0/id", "value": telecom_id},
        {"op": "remove", "path": "/telecom/0"},
    ]
    response = await patch(client, token, nhs, right)
    assert response.status_code == 200, response.text
    assert "telecom" not in response.json() or response.json()["telecom"] == []


async def test_if_match_and_content_type(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, GP)
    nhs = (await fresh(client, token))["id"]
    gender = [{"op": "replace", "path": "/gender", "value": "male"}]
    for if_match in (None, "2", 'W/"x"'):
        response = await patch(client, token, nhs, gender, if_match=if_match)
        assert response.status_code == 412
        assert coding(response)["code"] == "PRECONDITION_FAILED"
    wrong_type = await patch(client, token, nhs, gender, **{"Content-Type": "application/json"})
    assert wrong_type.status_code == 400
    assert coding(wrong_type)["code"] == "INVALID_VALUE"
    assert (await patch(client, token, "9000000000", gender)).status_code == 400
    assert (await patch(client, token, "9111231130", gender)).status_code == 404
    assert (await patch(client, await app_token(client, clients), nhs, gender)).status_code == 403


def test_nhs_patch_examples_are_accepted_by_the_parser() -> None:
    """Every PATCH example of the NHS specification is a well-formed request here."""
    from openspine.pds.patching import _check_shape

    folder = reference_file(
        "pds/specification/components/examples/requests/PatientPatch/add-name.json"
    ).parent
    for example in sorted(folder.glob("*.json")):
        assert _check_shape(json.loads(example.read_text())), example.name
