"""Cancellation (``prescription-order-update``): the decision Spine makes, and its R-codes.

The decision is pure: given the stored prescription and the line item asked for, it says which
R-code answers, and how the record changes. R-0001 cancelled; R-0002/R-0003 with a dispenser,
marked for cancellation (completed when the dispenser returns it); R-0004 dispensed (or
claimed); R-0005 expired; R-0006 already cancelled; R-0007 already marked by another
prescriber; R-0008 not found; R-0010 not dispensed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from openspine.eps.order import (
    ITEM_NUMBER,
    NHS_NUMBER,
    ROLE_PROFILE,
    identifier_value,
)
from openspine.eps.status import Event, LineItemStatus, PrescriptionStatus, next_status
from openspine.platform.errors import InvalidValue, MissingValue

__all__ = [
    "CANCEL_DISPLAYS",
    "CancelRequest",
    "Decision",
    "decide",
    "parse_cancel",
    "response_bundle",
]

CANCEL_DISPLAYS: Final = {
    "R-0001": "Prescription/item was cancelled",
    "R-0002": "Prescription/item was not cancelled. With dispenser. Marked for cancellation",
    "R-0003": "Prescription/item was not cancelled. With dispenser active. Marked for cancellation",
    "R-0004": "Prescription/item was not cancelled. Prescription has been dispensed.",
    "R-0005": "Prescription/item has expired",
    "R-0006": "Prescription/item had already been cancelled",
    "R-0007": "Prescription/item cancellation requested by another prescriber",
    "R-0008": "Prescription/item not found",
    "R-0010": "Prescription/item was not cancelled. Prescription has been not dispensed.",
}
_FUTURE: Final = frozenset(
    {
        PrescriptionStatus.FUTURE_DATED,
        PrescriptionStatus.REPEAT_DISPENSE_FUTURE_INSTANCE,
        PrescriptionStatus.AWAITING_RELEASE_READY,
    }
)
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True, slots=True)
class CancelRequest:
    message_id: str  # the request message's id, which the response's MessageHeader answers
    prescription_id: str
    item_id: str
    patient_nhs_number: str | None
    role_profile_id: str | None
    reason: Mapping[str, Any]
    medication_request: Mapping[str, Any]
    resources: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Decision:
    code: str
    record: dict[str, Any] | None  # the changed record, or None when nothing changes

    @property
    def cancelled(self) -> bool:
        return self.code == "R-0001"


def parse_cancel(bundle: Mapping[str, Any]) -> CancelRequest:
    raw = bundle.get("entry")
    entries: list[Any] = raw if isinstance(raw, list) else []
    resources = tuple(
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    )
    requests = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    if len(requests) != 1:
        raise InvalidValue(
            "The Bundle must contain exactly one MedicationRequest if"
            " MessageHeader.eventCoding.code is 'prescription-order-update'."
        )
    request = requests[0]
    if request.get("status") != "cancelled" or not request.get("statusReason"):
        raise InvalidValue("Expected MedicationRequest to have a value for statusReason.")
    prescription_id = (request.get("groupIdentifier") or {}).get("value")
    item_id = identifier_value(request.get("identifier", []), ITEM_NUMBER)
    if not prescription_id or not item_id:
        raise MissingValue("The cancellation must name the prescription and the line item")
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    roles = [r for r in resources if r.get("resourceType") == "PractitionerRole"]
    return CancelRequest(
        message_id=_message_id(bundle, entries),
        prescription_id=str(prescription_id),
        item_id=item_id,
        patient_nhs_number=identifier_value(patients[0].get("identifier", []), NHS_NUMBER)
        if patients
        else None,
        role_profile_id=identifier_value(roles[0].get("identifier", []), ROLE_PROFILE)
        if roles
        else None,
        reason=request["statusReason"],
        medication_request=request,
        resources=resources,
    )


def _message_id(bundle: Mapping[str, Any], entries: list[Any]) -> str:
    """The id a response message names in ``MessageHeader.response.identifier`` (FHIR ``id``).

    The request's MessageHeader id (or the UUID of its ``urn:uuid`` full URL), else the message
    identifier NHS senders put on the Bundle, else the Bundle's id. A prescription id is never one:
    its check character may be ``+``, which a FHIR ``id`` cannot hold.
    """
    candidates: list[Any] = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "MessageHeader":
            full_url = entry.get("fullUrl")
            candidates.append(resource.get("id"))
            if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
                candidates.append(full_url.removeprefix("urn:uuid:"))
    identifier = bundle.get("identifier")
    if isinstance(identifier, dict):
        candidates.append(identifier.get("value"))
    candidates.append(bundle.get("id"))
    for candidate in candidates:
        if isinstance(candidate, str) and _FHIR_ID.fullmatch(candidate):
            return candidate
    raise MissingValue("The message must carry an id: MessageHeader.id or Bundle.identifier")


def decide(record: Mapping[str, Any], request: CancelRequest) -> Decision:
    """What cancelling ``request.item_id`` of this prescription does."""
    items = {i["identifier"]: i for i in record["items"]}
    item = items.get(request.item_id)
    if item is None:
        return Decision("R-0008", None)
    status = PrescriptionStatus.from_code(record["status"])
    if item["status"] == LineItemStatus.CANCELLED.code:
        return Decision("R-0006", None)
    pending = record.get("pendingCancellation") or {}
    if request.item_id in pending:
        if pending[request.item_id] != request.role_profile_id:
            return Decision("R-0007", None)
        code = "R-0002" if status is PrescriptionStatus.WITH_DISPENSER else "R-0003"
        return Decision(code, None)
    if status is PrescriptionStatus.EXPIRED:
        return Decision("R-0005", None)
    if status in (PrescriptionStatus.CANCELLED, PrescriptionStatus.CANCELLED_FUTURE_INSTANCE):
        return Decision("R-0006", None)
    if status in (PrescriptionStatus.DISPENSED, PrescriptionStatus.CLAIMED):
        return Decision("R-0004", None)
    if status in (PrescriptionStatus.NOT_DISPENSED, PrescriptionStatus.NO_CLAIMED):
        return Decision("R-0010", None)
    changed = {**record, "items": [dict(i) for i in record["items"]]}
    if status in (PrescriptionStatus.WITH_DISPENSER, PrescriptionStatus.WITH_DISPENSER_ACTIVE):
        next_status(status, Event.CANCEL_PENDING)  # asserts the table allows it
        changed["pendingCancellation"] = {**pending, request.item_id: request.role_profile_id}
        code = "R-0002" if status is PrescriptionStatus.WITH_DISPENSER else "R-0003"
        return Decision(code, changed)
    for changed_item in changed["items"]:
        if changed_item["identifier"] == request.item_id:
            changed_item["status"] = LineItemStatus.CANCELLED.code
    if all(i["status"] == LineItemStatus.CANCELLED.code for i in changed["items"]):
        changed["status"] = next_status(status, Event.CANCEL).code
    elif status in _FUTURE:
        pass  # the other items stay due when the instance becomes due
    return Decision("R-0001", changed)


def response_bundle(request: CancelRequest, code: str, timestamp: str) -> dict[str, Any]:
    """The ``prescription-order-response`` message answering a cancellation."""
    medication_request = dict(request.medication_request)
    history = {
        "url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionStatusHistory",
        "extension": [
            {
                "url": "status",
                "valueCoding": {
                    "system": "https://fhir.nhs.uk/CodeSystem/medicationrequest-status-history",
                    "code": code,
                    "display": CANCEL_DISPLAYS[code],
                },
            },
            {"url": "statusDate", "valueDateTime": timestamp},
        ],
    }
    others = [e for e in medication_request.get("extension", []) if isinstance(e, dict)]
    medication_request["extension"] = [history, *others]
    medication_request["status"] = "cancelled" if code == "R-0001" else "active"
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "eventCoding": {
            "system": "https://fhir.nhs.uk/CodeSystem/message-event",
            "code": "prescription-order-response",
            "display": "Prescription Order Response",
        },
        "sender": {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                "value": "YES",
            },
            "display": "OpenSpine",
        },
        "source": {"name": "OpenSpine", "endpoint": "$process-message"},
        "response": {"identifier": request.message_id, "code": "ok"},
    }
    entries = [header, medication_request] + [
        dict(r)
        for r in request.resources
        if r.get("resourceType") in ("Patient", "Practitioner", "PractitionerRole", "Organization")
    ]
    message_id = str(uuid.uuid4())
    header["extension"] = [
        {
            "url": "https://fhir.nhs.uk/StructureDefinition/Extension-MessageHeader-messageId",
            "valueIdentifier": {
                "system": "https://tools.ietf.org/html/rfc4122",
                "value": message_id,
            },
        }
    ]
    return {
        "resourceType": "Bundle",
        "id": message_id,
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": message_id},
        "type": "message",
        "timestamp": timestamp,
        "entry": [{"resource": r} for r in entries],
    }
