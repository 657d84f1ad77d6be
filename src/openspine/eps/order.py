"""A prescription-order message (FHIR Bundle) read into what EPS checks, stores and signs.

:func:`parse_order` applies Spine's validation: one MessageHeader with event
``prescription-order``; one to four MedicationRequests with ``intent`` order (or original-order,
instance-order), distinct line item identifiers, one shared short-form prescription ID whose
MOD 37-2 check character holds, one shared performer, a consistent course of therapy (all the
same, or acute mixed with continuous), repeats up to 99 for repeat prescribing and dispensing,
an expected supply duration of 1 to 366 days; a patient with a valid NHS number; a requester
PractitionerRole (SDS role profile id) whose practitioner has exactly one professional code (and
an SDS user id where it is a Bundle entry); a prescribing organisation with an ODS code. Both
message shapes are read: references to Bundle entries, and references by identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from openspine.eps import prescription_id
from openspine.pds.domain import is_valid_nhs_number
from openspine.platform.errors import BadRequest, InvalidValue, MissingValue

__all__ = ["InvalidChecksum", "LineItem", "PrescriptionOrder", "TooFewValues", "parse_order"]

ORDER_NUMBER: Final = "https://fhir.nhs.uk/Id/prescription-order-number"
ITEM_NUMBER: Final = "https://fhir.nhs.uk/Id/prescription-order-item-number"
NHS_NUMBER: Final = "https://fhir.nhs.uk/Id/nhs-number"
ROLE_PROFILE: Final = "https://fhir.nhs.uk/Id/sds-role-profile-id"
USER_ID: Final = "https://fhir.nhs.uk/Id/sds-user-id"
ODS: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
PROFESSIONAL_CODES: Final = frozenset(
    {
        "https://fhir.hl7.org.uk/Id/gmc-number",
        "https://fhir.hl7.org.uk/Id/nmc-number",
        "https://fhir.hl7.org.uk/Id/gphc-number",
        "https://fhir.hl7.org.uk/Id/hcpc-number",
        "https://fhir.hl7.org.uk/Id/professional-code",
    }
)
REPEAT_INFORMATION: Final = (
    "https://fhir.nhs.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)
INTENTS: Final = frozenset({"order", "original-order", "instance-order"})
#: A released repeat-dispensing issue carries ``reflex-order``: valid to verify, not to send.
RELEASED_INTENTS: Final = INTENTS | {"reflex-order"}
TREATMENTS: Final = frozenset({"acute", "continuous", "continuous-repeat-dispensing"})
MAX_ITEMS: Final = 4
MAX_REPEATS: Final = 99


class TooFewValues(BadRequest):
    code = "TOO_FEW_VALUES_SUBMITTED"
    display = "Too few values submitted"
    issue_type = "invalid"


class TooManyItems(BadRequest):
    code = "INVALID_VALUE"
    display = "Provided value is invalid"
    issue_type = "processing"


class InvalidChecksum(BadRequest):
    code = "FAILURE_TO_PROCESS_MESSAGE"
    display = (
        "Unable to process message. Information missing or invalid - prescriptionID has invalid"
        " checksum"
    )
    issue_type = "processing"


@dataclass(frozen=True, slots=True)
class LineItem:
    identifier: str
    medication: Mapping[str, Any]
    dosage: tuple[Mapping[str, Any], ...]
    quantity: Mapping[str, Any] | None
    days_supply: int | None
    repeats_allowed: int | None
    authored_on: str | None


@dataclass(frozen=True, slots=True)
class PrescriptionOrder:
    prescription_id: str
    long_form_id: str | None
    patient_nhs_number: str
    role_profile_id: str
    user_id: str | None
    organisation_ods: str
    treatment: str
    performer_ods: str | None
    validity_start: str | None
    items: tuple[LineItem, ...]
    signature_data: str | None

    @property
    def repeats_allowed(self) -> int | None:
        counts = {i.repeats_allowed for i in self.items if i.repeats_allowed is not None}
        return max(counts) if counts else None

    def signed_content(self) -> dict[str, Any]:
        """What the prescriber's signature covers (ADR 0012)."""
        return {
            "prescriptionId": self.prescription_id,
            "patient": self.patient_nhs_number,
            "prescriber": {"user": self.user_id, "roleProfile": self.role_profile_id},
            "organisation": self.organisation_ods,
            "treatment": self.treatment,
            "items": [
                {
                    "identifier": i.identifier,
                    "medication": i.medication,
                    "dosageInstruction": list(i.dosage),
                    "quantity": i.quantity,
                    "daysSupply": i.days_supply,
                    "repeatsAllowed": i.repeats_allowed,
                    "authoredOn": i.authored_on,
                    "performer": self.performer_ods,
                    "validityStart": self.validity_start,
                }
                for i in sorted(self.items, key=lambda item: item.identifier)
            ],
        }


def _resources(bundle: Mapping[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    if bundle.get("resourceType") != "Bundle":
        raise InvalidValue("Incorrect FHIR resource type. Expected Bundle.")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise MissingValue("ResourceType Bundle must contain 'entry' field")
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise InvalidValue("Every Bundle.entry must carry a resource")
        found.append((entry.get("fullUrl"), entry["resource"]))
    return found


def identifier_value(identifiers: Iterable[Any], system: str) -> str | None:
    """The value of the first identifier of ``system``."""
    for identifier in identifiers:
        if isinstance(identifier, dict) and identifier.get("system") == system:
            value = identifier.get("value")
            return str(value) if value is not None else None
    return None


def _resolve(
    reference: Any, by_url: Mapping[str, dict[str, Any]], expected: str, field: str
) -> dict[str, Any]:
    target = reference.get("reference") if isinstance(reference, dict) else None
    resource = by_url.get(str(target)) if target else None
    if resource is None or resource.get("resourceType") != expected:
        raise InvalidValue(
            f"{field} populated incorrectly. Please populate with Reference to resource within"
            " Bundle.",
            expression=[field],
        )
    return resource


def _logical(reference: Any) -> dict[str, Any] | None:
    """A reference by identifier (the newer EPS message shape) rather than to an entry."""
    if isinstance(reference, dict) and isinstance(reference.get("identifier"), dict):
        return dict(reference["identifier"])
    return None


def _prescriber(reference: Any, by_url: Mapping[str, dict[str, Any]]) -> tuple[str | None, int]:
    """(SDS user id if given, how many professional codes) of the requester's practitioner."""
    logical = _logical(reference)
    if logical is not None:
        identifiers = [logical]
    else:
        practitioner = _resolve(reference, by_url, "Practitioner", "practitionerRole.practitioner")
        identifiers = [i for i in practitioner.get("identifier", []) if isinstance(i, dict)]
    user = identifier_value(identifiers, USER_ID)
    return user, sum(1 for i in identifiers if i.get("system") in PROFESSIONAL_CODES)


def _organisation(reference: Any, by_url: Mapping[str, dict[str, Any]]) -> str:
    logical = _logical(reference)
    if logical is not None:
        identifiers = [logical]
    else:
        organisation = _resolve(reference, by_url, "Organization", "practitionerRole.organization")
        identifiers = organisation.get("identifier", [])
    ods = identifier_value(identifiers, ODS)
    if ods is None:
        raise MissingValue("The prescribing organisation needs an ODS code")
    return ods


def _coding_code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding", []):
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"])
    return None


def _repeats(request: Mapping[str, Any]) -> int | None:
    dispense = request.get("dispenseRequest") or {}
    allowed = dispense.get("numberOfRepeatsAllowed")
    if allowed is not None:
        return int(allowed) + 1  # FHIR counts repeats after the first issue
    for extension in request.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == REPEAT_INFORMATION:
            for sub in extension.get("extension", []):
                if sub.get("url") == "numberOfPrescriptionsIssued":
                    return None  # issued so far, not allowed
    return None


def _days(request: Mapping[str, Any]) -> int | None:
    duration = (request.get("dispenseRequest") or {}).get("expectedSupplyDuration")
    if duration is None:
        return None
    value = duration.get("value") if isinstance(duration, dict) else None
    if not isinstance(value, (int, float)) or duration.get("code") not in (None, "d"):
        raise InvalidValue(
            "dispenseRequest.expectedSupplyDuration must be a number of days",
            expression=["MedicationRequest.dispenseRequest.expectedSupplyDuration"],
        )
    return int(value)


def parse_order(
    bundle: Mapping[str, Any],
    *,
    event: str = "prescription-order",
    intents: frozenset[str] = INTENTS,
) -> PrescriptionOrder:
    resources = _resources(bundle)
    by_url = {url: r for url, r in resources if url}
    headers = [r for _, r in resources if r.get("resourceType") == "MessageHeader"]
    if len(headers) != 1:
        raise InvalidValue("The Bundle must contain exactly one MessageHeader")
    code = (headers[0].get("eventCoding") or {}).get("code")
    if code != event:
        raise InvalidValue(
            "MessageHeader.eventCoding.code must be one of: prescription-order,"
            " prescription-order-update, dispense-notification.",
            expression=["MessageHeader.eventCoding.code"],
        )
    requests = [r for _, r in resources if r.get("resourceType") == "MedicationRequest"]
    if not requests:
        raise TooFewValues("The Bundle must contain at least one MedicationRequest")
    if len(requests) > MAX_ITEMS:
        raise TooManyItems(
            "Bundle contains too many resources of type MedicationRequest. Expected at most"
            f" {MAX_ITEMS}.",
            expression=["Bundle.entry"],
        )
    for request in requests:
        if request.get("intent") not in intents:
            raise InvalidValue(
                "MedicationRequest.intent must be order, original-order or instance-order.",
                expression=["Bundle.entry.resource.ofType(MedicationRequest).intent"],
            )
        if "medicationReference" in request and "medicationCodeableConcept" in request:
            raise InvalidValue(
                "MedicationRequest cannot contain both medicationReference and"
                " medicationCodeableConcept fields."
            )

    def shared(values: list[Any], field: str) -> Any:
        if any(v != values[0] for v in values):
            raise InvalidValue(
                f"Expected all MedicationRequests to have the same value for {field}.",
                expression=[f"MedicationRequest.{field}"],
            )
        return values[0]

    ids = [(r.get("groupIdentifier") or {}) for r in requests]
    short = shared([i.get("value") for i in ids], "groupIdentifier")
    if not isinstance(short, str) or not prescription_id.is_valid(short):
        raise InvalidChecksum("Prescription ID has an invalid checksum or shape")
    long_form = None
    for extension in ids[0].get("extension", []):
        if isinstance(extension, dict) and isinstance(extension.get("valueIdentifier"), dict):
            long_form = extension["valueIdentifier"].get("value")
    performers = [
        ((r.get("dispenseRequest") or {}).get("performer") or {}).get("identifier", {}).get("value")
        for r in requests
    ]
    performer = shared(performers, "dispenseRequest.performer")
    item_ids = [identifier_value(r.get("identifier", []), ITEM_NUMBER) for r in requests]
    if None in item_ids:
        raise MissingValue(
            "Every MedicationRequest needs a prescription-order-item-number identifier"
        )
    if len(set(item_ids)) != len(item_ids):
        raise InvalidValue(
            "Expected all MedicationRequests to have a different value for identifier.",
            expression=["MedicationRequest.identifier"],
        )
    treatments = {_coding_code(r.get("courseOfTherapyType")) for r in requests}
    if None in treatments or not treatments <= TREATMENTS:
        raise InvalidValue("MedicationRequest.courseOfTherapyType is missing or not supported")
    if len(treatments) > 1 and treatments != {"acute", "continuous"}:
        raise InvalidValue(
            "Course of therapy type must either match for all MedicationRequests or be a mixture"
            " of 'acute' and 'continuous'.",
            expression=["MedicationRequest.courseOfTherapyType.coding"],
        )
    treatment = (
        "continuous" if treatments == {"acute", "continuous"} else str(next(iter(treatments)))
    )
    validity_starts = [
        ((r.get("dispenseRequest") or {}).get("validityPeriod") or {}).get("start")
        for r in requests
    ]
    validity_start = shared(validity_starts, "dispenseRequest.validityPeriod.start")
    if validity_start is not None:
        try:
            date.fromisoformat(str(validity_start)[:10])
        except ValueError:
            raise InvalidValue("dispenseRequest.validityPeriod.start is not a date") from None
    items = []
    for request, item_id in zip(requests, item_ids, strict=True):
        days = _days(request)
        if days is not None and not 1 <= days <= 366:
            raise InvalidValue(
                "dispenseRequest.expectedSupplyDuration must be between 1 and 366 days",
                expression=["MedicationRequest.dispenseRequest.expectedSupplyDuration"],
            )
        repeats = _repeats(request)
        if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
            raise InvalidValue(
                f"dispenseRequest.numberOfRepeatsAllowed must allow at most {MAX_REPEATS} issues",
                expression=["MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"],
            )
        if treatment == "acute" and repeats not in (None, 1):
            raise InvalidValue("An acute prescription has no repeats")
        medication = request.get("medicationCodeableConcept") or request.get("medicationReference")
        if not isinstance(medication, dict):
            raise MissingValue("MedicationRequest needs a medication")
        items.append(
            LineItem(
                identifier=str(item_id),
                medication=medication,
                dosage=tuple(request.get("dosageInstruction", [])),
                quantity=(request.get("dispenseRequest") or {}).get("quantity"),
                days_supply=days,
                repeats_allowed=repeats,
                authored_on=request.get("authoredOn"),
            )
        )
    if treatment == "continuous-repeat-dispensing" and any(
        i.repeats_allowed is None for i in items
    ):
        raise MissingValue("Repeat dispensing needs dispenseRequest.numberOfRepeatsAllowed")
    if len({i.repeats_allowed for i in items if i.repeats_allowed is not None}) > 1:
        raise InvalidValue(
            "Expected all MedicationRequests to have the same value for"
            " dispenseRequest.numberOfRepeatsAllowed.",
        )
    patient = _resolve(requests[0].get("subject"), by_url, "Patient", "MedicationRequest.subject")
    nhs_number = identifier_value(patient.get("identifier", []), NHS_NUMBER)
    if nhs_number is None or not is_valid_nhs_number(nhs_number):
        raise InvalidValue("Patient.identifier must carry a valid NHS number")
    role = _resolve(
        requests[0].get("requester"), by_url, "PractitionerRole", "MedicationRequest.requester"
    )
    role_profile = identifier_value(role.get("identifier", []), ROLE_PROFILE)
    if role_profile is None:
        raise MissingValue("PractitionerRole.identifier needs an SDS role profile id")
    user, professional = _prescriber(role.get("practitioner"), by_url)
    if professional != 1:
        raise InvalidValue(
            "Bundle resource Practitioner.identifier expected exactly one professional code from"
            " GMC/NMC/GPhC/HCPC/professional-code."
        )
    ods = _organisation(role.get("organization"), by_url)
    signature = None
    for _, resource in resources:
        if resource.get("resourceType") == "Provenance":
            for sig in resource.get("signature", []):
                if isinstance(sig, dict) and sig.get("data"):
                    signature = str(sig["data"])
    return PrescriptionOrder(
        prescription_id=short,
        long_form_id=long_form,
        patient_nhs_number=nhs_number,
        role_profile_id=role_profile,
        user_id=user,
        organisation_ods=ods,
        treatment=treatment,
        performer_ods=performer,
        validity_start=validity_start,
        items=tuple(items),
        signature_data=signature,
    )
