"""Claims (``POST /Claim``): a dispenser claims for a dispensed or not-dispensed prescription
(0006 → 0008 Claimed, 0007 → 0009 No-Claimed) and may amend only its latest claim
(``replacementOf``). Claiming completes an issue: for repeat dispensing the next issue then
becomes due (until the number of issues allowed is reached)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from openspine.eps.order import NHS_NUMBER, ODS, ORDER_NUMBER, identifier_value
from openspine.eps.status import Event, LineItemStatus, PrescriptionStatus, next_status
from openspine.platform.errors import Forbidden, InvalidValue, MissingValue

__all__ = ["ClaimRequest", "apply_claim", "next_issue", "parse_claim"]

GROUP_IDENTIFIER: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-GroupIdentifier"
REPLACEMENT_OF: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf"
UUID_SYSTEM: Final = "https://tools.ietf.org/html/rfc4122"
ENDORSEMENT: Final = "https://fhir.nhs.uk/CodeSystem/medicationdispense-endorsement"


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    identifier: str
    prescription_id: str
    nhs_number: str | None
    provider_ods: str | None
    replaces: str | None


def parse_claim(claim: Mapping[str, Any]) -> ClaimRequest:
    if claim.get("resourceType") != "Claim":
        raise InvalidValue("Incorrect FHIR resource type. Expected Claim.")
    prescription_id = None
    for extension in (claim.get("prescription") or {}).get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == GROUP_IDENTIFIER:
            for sub in extension.get("extension", []):
                identifier = sub.get("valueIdentifier") or {}
                if sub.get("url") == "shortForm" and identifier.get("system") == ORDER_NUMBER:
                    prescription_id = identifier.get("value")
    if not prescription_id:
        raise MissingValue("Claim.prescription must carry the short-form prescription ID")
    if not claim.get("item"):
        raise MissingValue("A claim needs at least one item")
    for item in claim["item"]:
        for detail in (item.get("detail") or []) if isinstance(item, dict) else []:
            systems = {
                coding.get("system")
                for concept in detail.get("programCode", [])
                for coding in (concept.get("coding", []) if isinstance(concept, dict) else [])
                if isinstance(coding, dict)
            }
            if ENDORSEMENT not in systems:
                raise InvalidValue(
                    "Claim.item.detail.programCode must include a dispenser endorsement code"
                    " (NDEC where there is none)",
                    expression=["Claim.item.detail.programCode"],
                )
    provider = None
    reference = (claim.get("provider") or {}).get("reference", "")
    for resource in claim.get("contained", []):
        if isinstance(resource, dict) and f"#{resource.get('id')}" == reference:
            if resource.get("resourceType") == "Organization":
                provider = identifier_value(resource.get("identifier", []), ODS)
            elif resource.get("resourceType") == "PractitionerRole":
                org = (resource.get("organization") or {}).get("identifier") or {}
                provider = org.get("value") if isinstance(org, dict) else None
    replaces = None
    for extension in claim.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == REPLACEMENT_OF:
            replaces = (extension.get("valueIdentifier") or {}).get("value")
    patient = (claim.get("patient") or {}).get("identifier") or {}
    return ClaimRequest(
        identifier=str(
            identifier_value(claim.get("identifier", []), "https://tools.ietf.org/html/rfc4122")
            or ""
        ),
        prescription_id=str(prescription_id),
        nhs_number=patient.get("value") if patient.get("system") == NHS_NUMBER else None,
        provider_ods=provider.upper() if provider else None,
        replaces=replaces,
    )


def apply_claim(record: Mapping[str, Any], claim: ClaimRequest, dispenser: str) -> dict[str, Any]:
    if record.get("dispenser") != dispenser:
        raise Forbidden("The prescription was not dispensed by your organisation")
    if claim.nhs_number not in (None, record["patient"]):
        raise InvalidValue("Claim.patient does not match the prescription's patient")
    history = list(record.get("claims", []))
    status = PrescriptionStatus.from_code(record["status"])
    if claim.replaces is not None:
        if not history or history[-1] != claim.replaces:
            raise InvalidValue("Only the latest claim can be amended")
        new_status = next_status(status, Event.CLAIM_AMEND)
    else:
        new_status = next_status(status, Event.CLAIM)
    history.append(claim.identifier)
    claimed = {**record, "status": new_status.code, "claims": history}
    if claim.replaces is None:
        return next_issue(claimed)
    return claimed


def next_issue(record: Mapping[str, Any]) -> dict[str, Any]:
    """Repeat dispensing: once an issue is claimed it is complete, and the next becomes due.

    The completed issue is kept under ``previousIssues``; the record then describes the new
    issue, To Be Dispensed with every item to be dispensed. Other treatments are unchanged.
    """
    issue = int(record.get("issue") or 1)
    allowed = record.get("repeatsAllowed")
    if record.get("treatment") != "continuous-repeat-dispensing" or not allowed or issue >= allowed:
        return dict(record)
    completed = {
        key: record.get(key)
        for key in ("issue", "status", "items", "dispenser", "dispenseNotifications", "claims")
    }
    return {
        **record,
        "previousIssues": [*record.get("previousIssues", []), completed],
        "issue": issue + 1,
        "status": PrescriptionStatus.TO_BE_DISPENSED.code,
        "items": [
            {**item, "status": LineItemStatus.TO_BE_DISPENSED.code} for item in record["items"]
        ],
        "dispenser": None,
        "dispenseNotifications": [],
        "claims": [],
    }
