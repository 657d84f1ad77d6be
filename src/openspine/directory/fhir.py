"""Directory records as FHIR R4 resources, shaped as the SDS FHIR API and ODS answer them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from openspine.directory.domain import (
    AccreditedSystem,
    MessageHandler,
    Organisation,
    RoleProfile,
    User,
)

__all__ = [
    "device",
    "endpoint",
    "organization",
    "practitioner",
    "practitioner_role",
    "searchset",
]

ODS: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
ASID: Final = "https://fhir.nhs.uk/Id/nhsSpineASID"
PARTY_KEY: Final = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
INTERACTION: Final = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
SDS: Final = "https://fhir.nhs.uk/StructureDefinition/"
ODS_ROLE: Final = (
    "https://digital.nhs.uk/services/organisation-data-service/CodeSystem/ODSOrganisationRole"
)
_ROLE_NAMES: Final = {
    "RO177": "PRESCRIBING COST CENTRE",
    "RO76": "GP PRACTICE",
    "RO182": "PHARMACY",
    "RO197": "NHS TRUST",
    "RO98": "CLINICAL COMMISSIONING GROUP",
}


def _stable_id(*parts: str) -> str:
    """The same record always gets the same logical id (SDS ids are GUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "openspine:" + ":".join(parts))).upper()


def _ods(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": code}}


def _interaction(value: str) -> dict[str, Any]:
    return {
        "url": SDS + "Extension-SDS-NhsServiceInteractionId",
        "valueReference": {"identifier": {"system": INTERACTION, "value": value}},
    }


def device(system: AccreditedSystem) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": _stable_id("device", system.asid),
        "identifier": [
            {"system": ASID, "value": system.asid},
            {"system": PARTY_KEY, "value": system.party_key},
        ],
        "extension": [
            {
                "url": SDS + "Extension-SDS-ManufacturingOrganisation",
                "valueReference": _ods(system.manufacturing_ods_code),
            },
            *(_interaction(i) for i in system.interactions),
        ],
        "owner": _ods(system.ods_code),
    }


def endpoint(handler: MessageHandler, base_url: str) -> dict[str, Any]:
    address = handler.address if "://" in handler.address else base_url + handler.address
    return {
        "resourceType": "Endpoint",
        "id": _stable_id("endpoint", handler.party_key),
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-msg",
            "display": "HL7 FHIR Messaging",
        },
        "payloadType": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                        "code": "any",
                        "display": "Any",
                    }
                ]
            }
        ],
        "address": address,
        "managingOrganization": _ods(handler.ods_code),
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhsMhsFQDN", "value": handler.fqdn},
            {"system": PARTY_KEY, "value": handler.party_key},
            {"system": "https://fhir.nhs.uk/Id/nhsMhsCPAId", "value": handler.cpa_id},
            {"system": "https://fhir.nhs.uk/Id/nhsMHSId", "value": handler.cpa_id},
        ],
        "extension": [
            {
                "url": SDS + "Extension-SDS-ReliabilityConfiguration",
                "extension": [
                    {"url": "nhsMHSSyncReplyMode", "valueString": handler.sync_reply_mode},
                    {"url": "nhsMHSRetryInterval", "valueString": handler.retry_interval},
                    {"url": "nhsMHSRetries", "valueInteger": handler.retries},
                    {"url": "nhsMHSPersistDuration", "valueString": handler.persist_duration},
                    {
                        "url": "nhsMHSDuplicateElimination",
                        "valueString": handler.duplicate_elimination,
                    },
                    {"url": "nhsMHSAckRequested", "valueString": handler.ack_requested},
                    {"url": "nhsMHSActor", "valueString": handler.actor},
                ],
            },
            *(_interaction(i) for i in handler.interactions),
        ],
    }


def organization(org: Organisation) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": org.ods_code,
        "identifier": [{"system": ODS, "value": org.ods_code}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": ODS_ROLE,
                        "code": role.value,
                        "display": _ROLE_NAMES.get(role.value, ""),
                    }
                ]
            }
            for role in org.roles
        ],
        "name": org.name,
        "address": [
            {
                "use": "work",
                "line": [org.address_line],
                "city": org.town,
                "postalCode": org.postcode,
                "country": "ENGLAND",
            }
        ],
    }
    if org.parent_ods_code:
        resource["partOf"] = _ods(org.parent_ods_code)
    return resource


def practitioner(user: User) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": user.user_id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": user.user_id}],
        "name": [{"text": user.name}],
    }
    if user.professional_code:
        resource["identifier"].append(
            {
                "system": "https://fhir.hl7.org.uk/Id/professional-code",
                "value": user.professional_code,
            }
        )
    return resource


def practitioner_role(profile: RoleProfile) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": profile.role_profile_id,
        "identifier": [
            {
                "system": "https://fhir.nhs.uk/Id/sds-role-profile-id",
                "value": profile.role_profile_id,
            }
        ],
        "active": profile.active,
        "practitioner": {
            "identifier": {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": profile.user_id}
        },
        "organization": _ods(profile.ods_code),
        "code": [
            {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode",
                        "code": profile.job_role_code,
                        "display": profile.job_role_name,
                    }
                ]
            }
        ],
    }


def searchset(resources: Sequence[dict[str, Any]], base_url: str) -> bytes:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()).upper(),
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }
    return orjson.dumps(bundle)
