"""EPS dispensing through the ASGI app: release, dispense notifications, withdraw, return,
pending cancellation completed on return, and the tracker."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.api.helpers import user_token
from tests.api.pds_helpers import headers
from tests.api.test_eps_prescribing import (
    BASE,
    EXAMPLES,
    GP,
    adopt,
    cancellation,
    example_orders,
    load,
    pharmacist,
    post,
    r_code,
    release_parameters,
    sign,
)
from tests.api.test_pds_read import coding
from tests.conftest import Clients

pytestmark = pytest.mark.anyio
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


async def nominated_prescription(
    client: httpx.AsyncClient, clients: Clients, pharmacy: str
) -> tuple[str, list[str]]:
    gp = await user_token(client, clients, GP)
    bundle = adopt(load(example_orders()[0]), clients)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["dispenseRequest"]["performer"] = {
                "identifier": {"system": ODS, "value": pharmacy}
            }
    signed = sign(bundle, (await post(client, gp, "$prepare", bundle)).json(), clients)
    assert (await post(client, gp, "$process-message", signed)).status_code == 200
    requests = [
        e["resource"]
        for e in signed["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    items = [
        next(
            i["value"]
            for i in r["identifier"]
            if i["system"].endswith("prescription-order-item-number")
        )
        for r in requests
    ]
    return requests[0]["groupIdentifier"]["value"], items


def notification(
    prescription_id: str,
    items: dict[str, str],
    business_status: str,
    pharmacy: str,
    replaces: str | None = None,
) -> tuple[str, dict[str, Any]]:
    identifier = str(uuid.uuid4())
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "eventCoding": {
            "system": "https://fhir.nhs.uk/CodeSystem/message-event",
            "code": "dispense-notification",
        },
        "source": {"endpoint": "urn:nhs-uk:addressing:ods:" + pharmacy},
    }
    if replaces:
        header["extension"] = [
            {
                "url": "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf",
                "valueIdentifier": {
                    "system": "https://tools.ietf.org/html/rfc4122",
                    "value": replaces,
                },
            }
        ]
    dispenses = [
        {
            "resourceType": "MedicationDispense",
            "status": "completed",
            "contained": [
                {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "identifier": [
                        {
                            "system": "https://fhir.nhs.uk/Id/prescription-order-item-number",
                            "value": item,
                        }
                    ],
                    "groupIdentifier": {
                        "system": "https://fhir.nhs.uk/Id/prescription-order-number",
                        "value": prescription_id,
                    },
                    "status": "active",
                    "intent": "order",
                    "subject": {
                        "identifier": {
                            "system": "https://fhir.nhs.uk/Id/nhs-number",
                            "value": "9000000009",
                        }
                    },
                    "medicationCodeableConcept": {
                        "coding": [
                            {"system": "http://snomed.info/sct", "code": "39732311000001104"}
                        ]
                    },
                }
            ],
            "authorizingPrescription": [{"reference": "#m1"}],
            "medicationCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": "39732311000001104"}]
            },
            "type": {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                        "code": status,
                    }
                ]
            },
            "extension": [
                {
                    "url": "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-TaskBusinessStatus",
                    "valueCoding": {
                        "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status",
                        "code": business_status,
                    },
                }
            ],
        }
        for item, status in items.items()
    ]
    organisation = {
        "resourceType": "Organization",
        "identifier": [{"system": ODS, "value": pharmacy}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "message",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": identifier},
        "entry": [{"resource": r} for r in (header, *dispenses, organisation)],
    }
    return identifier, bundle


def task(
    kind: str, prescription_id: str, pharmacy: str, focus: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "intent": "order",
        "groupIdentifier": {
            "system": "https://fhir.nhs.uk/Id/prescription-order-number",
            "value": prescription_id,
        },
        "for": {
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}
        },
        "owner": {"identifier": {"system": ODS, "value": pharmacy}},
    }
    if kind == "return":
        body["status"] = "rejected"
        body["statusReason"] = {
            "coding": [
                {
                    "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-return-status-reason",
                    "code": "0003",
                }
            ]
        }
    else:
        body["status"] = "in-progress"
        body["statusReason"] = {
            "coding": [
                {
                    "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-withdraw-reason",
                    "code": "MU",
                }
            ]
        }
        if focus:
            body["focus"] = {
                "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": focus}
            }
    return body


async def tracked_status(client: httpx.AsyncClient, token: str, prescription_id: str) -> str:
    response = await client.get(
        f"{BASE}/Task", params={"group-identifier": prescription_id}, headers=headers(token)
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    Bundle.model_validate(bundle)
    return str(bundle["entry"][0]["resource"]["businessStatus"]["coding"][0]["code"])


async def test_dispensing_lifecycle(client: httpx.AsyncClient, clients: Clients) -> None:
    if not example_orders():
        pytest.skip(f"NHS reference material not present at {EXAMPLES}")
    _, pharmacy = pharmacist(clients)
    prescription_id, items = await nominated_prescription(client, clients, pharmacy)
    dispenser = await user_token(client, clients, "R8003")
    gp = await user_token(client, clients, GP)
    assert await tracked_status(client, gp, prescription_id) == "0001"
    assert (
        await post(
            client, dispenser, "Task/$release", release_parameters(pharmacy, prescription_id)
        )
    ).status_code == 200
    assert await tracked_status(client, dispenser, prescription_id) == "0002"
    partial_id, partial = notification(prescription_id, {items[0]: "0003"}, "0003", pharmacy)
    assert (await post(client, dispenser, "$process-message", partial)).status_code == 200
    assert await tracked_status(client, gp, prescription_id) == "0003"
    full_id, full = notification(prescription_id, dict.fromkeys(items, "0001"), "0006", pharmacy)
    assert (await post(client, dispenser, "$process-message", full)).status_code == 200
    assert await tracked_status(client, gp, prescription_id) == "0006"
    # Only the latest notification can be amended or withdrawn.
    _, stale = notification(
        prescription_id, dict.fromkeys(items, "0001"), "0006", pharmacy, replaces=partial_id
    )
    response = await post(client, dispenser, "$process-message", stale)
    assert response.status_code == 400
    assert coding(response)["code"] == "INVALID_VALUE"
    wrong = await post(
        client, dispenser, "Task", task("withdraw", prescription_id, pharmacy, partial_id)
    )
    assert wrong.status_code == 400
    back = await post(
        client, dispenser, "Task", task("withdraw", prescription_id, pharmacy, full_id)
    )
    assert back.status_code == 200, back.text
    assert await tracked_status(client, gp, prescription_id) == "0003"
    # A dispensed prescription cannot be released again or returned.
    response = await post(client, dispenser, "Task", task("return", prescription_id, pharmacy))
    assert response.status_code == 400
    assert coding(response)["code"] == "PRESCRIPTION_INVALID_STATE_TRANSITION"
    # Another organisation cannot act on it; by patient, the tracker finds it.
    assert (
        await post(client, dispenser, "Task", task("withdraw", prescription_id, "FZZ99"))
    ).status_code == 403
    by_patient = await client.get(
        f"{BASE}/Task",
        params={"patient:identifier": "https://fhir.nhs.uk/Id/nhs-number|9000000009"},
        headers=headers(gp),
    )
    assert prescription_id in [e["resource"]["id"] for e in by_patient.json()["entry"]]


async def test_return_completes_a_pending_cancellation(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    if not example_orders():
        pytest.skip(f"NHS reference material not present at {EXAMPLES}")
    _, pharmacy = pharmacist(clients)
    prescription_id, items = await nominated_prescription(client, clients, pharmacy)
    dispenser = await user_token(client, clients, "R8003")
    gp = await user_token(client, clients, GP)
    assert (
        await post(
            client, dispenser, "Task/$release", release_parameters(pharmacy, prescription_id)
        )
    ).status_code == 200
    for item in items:
        assert (
            r_code(
                await post(
                    client, gp, "$process-message", cancellation(clients, prescription_id, item)
                )
            )
            == "R-0002"
        )
    returned = await post(client, dispenser, "Task", task("return", prescription_id, pharmacy))
    assert returned.status_code == 200, returned.text
    assert await tracked_status(client, gp, prescription_id) == "0005"


async def test_plain_return_makes_it_releasable_again(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    if not example_orders():
        pytest.skip(f"NHS reference material not present at {EXAMPLES}")
    _, pharmacy = pharmacist(clients)
    prescription_id, _ = await nominated_prescription(client, clients, pharmacy)
    dispenser = await user_token(client, clients, "R8003")
    assert (
        await post(
            client, dispenser, "Task/$release", release_parameters(pharmacy, prescription_id)
        )
    ).status_code == 200
    assert (
        await post(client, dispenser, "Task", task("return", prescription_id, pharmacy))
    ).status_code == 200
    assert await tracked_status(client, dispenser, prescription_id) == "0001"
    again = await post(client, dispenser, "Task/$release", release_parameters(pharmacy))
    assert again.status_code == 200
