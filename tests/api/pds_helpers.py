"""Requests against the PDS API as an integrator's client makes them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from tests.conftest import PATIENT_BASE


def headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4()), **extra}


async def search(
    http: httpx.AsyncClient, token: str, params: Sequence[tuple[str, str]]
) -> httpx.Response:
    return await http.get(f"{PATIENT_BASE}/Patient", params=tuple(params), headers=headers(token))


async def patch(
    http: httpx.AsyncClient,
    token: str,
    nhs_number: str,
    patches: list[dict[str, Any]] | dict[str, Any],
    if_match: str | None = 'W/"1"',
    **extra: str,
) -> httpx.Response:
    body = patches if isinstance(patches, dict) else {"patches": patches}
    sent = {"Content-Type": "application/json-patch+json", **extra}
    if if_match is not None:
        sent["If-Match"] = if_match
    return await http.patch(
        f"{PATIENT_BASE}/Patient/{nhs_number}", json=body, headers=headers(token, **sent)
    )


def new_patient(family: str, given: str = "Ada", born: str = "1990-04-01") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"use": "usual", "given": [given], "family": family, "prefix": ["Ms"]}],
        "gender": "female",
        "birthDate": born,
        "address": [
            {"use": "home", "line": ["1 Trevelyan Square", "Leeds"], "postalCode": "LS1 6AE"}
        ],
        "telecom": [{"system": "phone", "use": "home", "value": "01632960587"}],
        "extension": [
            {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegisteringAuthority",
                "extension": [
                    {
                        "url": "registeringAuthorityType",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.nhs.uk/CodeSystem/UKCore-RegisteringAuthorityType",
                                    "code": "O",
                                }
                            ]
                        },
                    }
                ],
            }
        ],
    }


async def create(http: httpx.AsyncClient, token: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{PATIENT_BASE}/Patient", json=body, headers=headers(token))
