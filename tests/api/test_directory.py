"""The Spine directory FHIR API through the ASGI app, checked against the SDS examples."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.api.helpers import app_token
from tests.api.pds_helpers import headers
from tests.api.test_pds_read import coding
from tests.conftest import Clients, reference_file

pytestmark = pytest.mark.anyio
BASE = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
INTERACTION = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PARTY = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
GPC = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
SCR = "urn:nhs:names:services:psis:REPC_IN150016UK05"


async def get(
    http: httpx.AsyncClient, clients: Clients, path: str, params: Sequence[tuple[str, str]]
) -> httpx.Response:
    token = await app_token(http, clients)
    return await http.get(f"{BASE}/{path}", params=tuple(params), headers=headers(token))


def entries(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    Bundle.model_validate(body)
    return [e["resource"] for e in body["entry"]]


async def test_device_search_like_the_sds_example(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    found = entries(
        await get(
            client,
            clients,
            "Device",
            [("organization", f"{ODS}|A81001"), ("identifier", f"{INTERACTION}|{GPC}")],
        )
    )
    assert len(found) == 1
    device = found[0]
    example = json.loads(
        reference_file("sds/specification/components/examples/Device.json").read_text()
    )
    assert set(device) == set(example)
    assert [i["system"] for i in device["identifier"]] == [
        i["system"] for i in example["identifier"]
    ]
    party = next(i["value"] for i in device["identifier"] if i["system"] == PARTY)
    narrowed = await get(
        client,
        clients,
        "Device",
        [
            ("organization", f"{ODS}|A81001"),
            ("identifier", f"{INTERACTION}|{GPC}"),
            ("identifier", f"{PARTY}|{party}"),
        ],
    )
    assert len(entries(narrowed)) == 1
    other_party = await get(
        client,
        clients,
        "Device",
        [
            ("organization", f"{ODS}|A81001"),
            ("identifier", f"{INTERACTION}|{GPC}"),
            ("identifier", f"{PARTY}|X-1"),
        ],
    )
    assert entries(other_party) == []


async def test_endpoint_combinations(client: httpx.AsyncClient, clients: Clients) -> None:
    spine = entries(
        await get(
            client,
            clients,
            "Endpoint",
            [("organization", f"{ODS}|YES"), ("identifier", f"{INTERACTION}|{SCR}")],
        )
    )
    assert len(spine) == 1
    example = json.loads(
        reference_file("sds/specification/components/examples/Endpoint.json").read_text()
    )
    assert set(spine[0]) == set(example)
    reliability = spine[0]["extension"][0]["extension"]
    assert [e["url"] for e in reliability] == [
        e["url"] for e in example["extension"][0]["extension"]
    ]
    assert spine[0]["address"].endswith("/reliablemessaging/reliablerequest")
    by_party = await get(
        client,
        clients,
        "Endpoint",
        [("organization", f"{ODS}|YES"), ("identifier", f"{PARTY}|YES-0000806")],
    )
    assert len(entries(by_party)) == 1
    by_service_party = await get(
        client,
        clients,
        "Endpoint",
        [("identifier", f"{INTERACTION}|{SCR}"), ("identifier", f"{PARTY}|YES-0000806")],
    )
    assert len(entries(by_service_party)) == 1
    alone = await get(client, clients, "Endpoint", [("identifier", f"{INTERACTION}|{SCR}")])
    assert alone.status_code == 400
    assert coding(alone)["code"] == "INVALID_SEARCH_DATA"


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("Device", [("identifier", f"{INTERACTION}|{GPC}")], "MISSING_VALUE"),
        ("Device", [("organization", f"{ODS}|A81001")], "MISSING_VALUE"),
        (
            "Device",
            [("organization", "A81001"), ("identifier", f"{INTERACTION}|{GPC}")],
            "INVALID_VALUE",
        ),
        ("Device", [("organization", f"{ODS}|A81001"), ("identifier", "nope|x")], "INVALID_VALUE"),
        (
            "Device",
            [
                ("organization", f"{ODS}|A81001"),
                ("identifier", f"{INTERACTION}|{GPC}"),
                ("pets", "1"),
            ],
            "ADDITIONAL_PROPERTIES",
        ),
        ("Organization", [], "INVALID_SEARCH_DATA"),
        ("Organization", [("type", "RO999")], "INVALID_VALUE"),
        ("PractitionerRole", [], "MISSING_VALUE"),
    ],
)
async def test_bad_searches(
    client: httpx.AsyncClient, clients: Clients, path: str, params: list[tuple[str, str]], code: str
) -> None:
    response = await get(client, clients, path, params)
    assert response.status_code == 400, response.text
    assert coding(response)["code"] == code


async def test_organisations(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await app_token(client, clients)
    one = await client.get(f"{BASE}/Organization/y12345", headers=headers(token))
    assert one.status_code == 200
    assert one.json()["name"] == "NHS Sandbox GP Practice and Pharmacy"
    from fhir.resources.R4B.organization import Organization

    Organization.model_validate(one.json())
    assert (
        await client.get(f"{BASE}/Organization/ZZZ999", headers=headers(token))
    ).status_code == 404
    practices = entries(
        await get(client, clients, "Organization", [("type", "RO177"), ("_count", "100")])
    )
    assert {"A81001", "Y12345"} <= {o["id"] for o in practices}
    by_postcode = entries(
        await get(client, clients, "Organization", [("address-postalcode", "ls1 6ae")])
    )
    assert [o["id"] for o in by_postcode] == ["Y12345"]
    by_name = entries(await get(client, clients, "Organization", [("name", "sandbox gp")]))
    assert [o["id"] for o in by_name] == ["Y12345"]
    both = entries(
        await get(client, clients, "Organization", [("name", "sandbox"), ("type", "RO197")])
    )
    assert both == []


async def test_practitioner_roles_are_the_security_layers_role_profiles(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    user_id, role_profile_id = clients.user("R8000")
    found = entries(
        await get(
            client,
            clients,
            "PractitionerRole",
            [("practitioner.identifier", f"https://fhir.nhs.uk/Id/sds-user-id|{user_id}")],
        )
    )
    assert [r["id"] for r in found] == [role_profile_id]


async def test_directory_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/Organization/Y12345")
    assert response.status_code == 401


async def test_relationships_and_practitioners(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await app_token(client, clients)
    practice = (await client.get(f"{BASE}/Organization/A81001", headers=headers(token))).json()
    commissioner_code = practice["partOf"]["identifier"]["value"]
    commissioner = await client.get(
        f"{BASE}/Organization/{commissioner_code}", headers=headers(token)
    )
    assert commissioner.json()["type"][0]["coding"][0]["code"] == "RO98"
    user_id, _ = clients.user("R8000")
    person = await client.get(f"{BASE}/Practitioner/{user_id}", headers=headers(token))
    assert person.status_code == 200
    from fhir.resources.R4B.practitioner import Practitioner

    Practitioner.model_validate(person.json())
