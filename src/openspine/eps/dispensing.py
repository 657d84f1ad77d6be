"""Dispensing decisions on a stored prescription: return, dispense notification, withdraw.

Each is pure: it takes the record and the request and gives the changed record, or raises the
EPS error. A dispenser acts only on prescriptions it holds (``record["dispenser"]``). Dispense
notifications are kept in order; only the latest may be amended (``replacementOf``) or withdrawn,
and withdrawing it restores the statuses the one before it left (or With Dispenser when none).
A return completes any cancellation that was pending while the dispenser held it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from openspine.eps.order import ITEM_NUMBER, ODS, ORDER_NUMBER, identifier_value
from openspine.eps.status import Event, LineItemStatus, PrescriptionStatus, next_status
from openspine.platform.errors import Forbidden, InvalidValue, MissingValue

__all__ = [
    "DispenseNotification",
    "TaskRequest",
    "apply_notification",
    "parse_notification",
    "parse_task",
    "return_prescription",
    "withdraw",
]

WITHDRAW_REASONS: Final = frozenset({"QU", "MU", "DA", "PA", "OC", "ONC"})
RETURN_REASON_SYSTEM: Final = (
    "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-return-status-reason"
)
WITHDRAW_REASON_SYSTEM: Final = "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-withdraw-reason"
BUSINESS_STATUS: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-TaskBusinessStatus"
REPLACEMENT_OF: Final = "https://fhir.nhs.uk/StructureDefinition/Extension-replacementOf"
NON_DISPENSING: Final = (
    "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionNonDispensingReason"
)
_ITEM_CODES: Final = frozenset(s.code for s in LineItemStatus)
_EVENT_FOR: Final = {
    PrescriptionStatus.WITH_DISPENSER_ACTIVE: Event.DISPENSE_PARTIAL,
    PrescriptionStatus.DISPENSED: Event.DISPENSE_FULL,
    PrescriptionStatus.NOT_DISPENSED: Event.NOT_DISPENSED,
}


@dataclass(frozen=True, slots=True)
class TaskRequest:
    kind: str  # "return" or "withdraw"
    prescription_id: str
    nhs_number: str | None
    owner_ods: str | None
    reason: str
    focus: str | None


@dataclass(frozen=True, slots=True)
class DispenseNotification:
    identifier: str
    prescription_id: str
    dispenser_ods: str
    prescription_status: PrescriptionStatus
    items: Mapping[str, str]  # line item id → line item status code
    replaces: str | None


def _reason(task: Mapping[str, Any], system: str) -> str:
    for coding in (task.get("statusReason") or {}).get("coding", []):
        if isinstance(coding, dict) and coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    raise MissingValue("Task.statusReason is missing or from the wrong code system")


def _contained_ods(task: Mapping[str, Any]) -> str | None:
    owner = (task.get("owner") or {}).get("identifier", {})
    if isinstance(owner, dict) and owner.get("system") == ODS and owner.get("value"):
        return str(owner["value"]).upper()
    for resource in task.get("contained", []):
        if isinstance(resource, dict) and resource.get("resourceType") == "Organization":
            ods = identifier_value(resource.get("identifier", []), ODS)
            if ods:
                return ods.upper()
    return None


def parse_task(task: Mapping[str, Any]) -> TaskRequest:
    if task.get("resourceType") != "Task":
        raise InvalidValue("Incorrect FHIR resource type. Expected Task.")
    group = task.get("groupIdentifier") or {}
    if group.get("system") != ORDER_NUMBER or not group.get("value"):
        raise MissingValue("Task.groupIdentifier must carry the prescription-order-number")
    patient = (task.get("for") or {}).get("identifier", {})
    focus = (task.get("focus") or {}).get("identifier", {})
    status = task.get("status")
    if status == "rejected":
        kind, reason = "return", _reason(task, RETURN_REASON_SYSTEM)
    elif status == "in-progress":
        kind, reason = "withdraw", _reason(task, WITHDRAW_REASON_SYSTEM)
        if reason not in WITHDRAW_REASONS:
            raise InvalidValue(
                f"Withdraw reason must be one of {', '.join(sorted(WITHDRAW_REASONS))}"
            )
    else:
        raise InvalidValue("Task.status must be rejected (return) or in-progress (withdraw)")
    return TaskRequest(
        kind=kind,
        prescription_id=str(group["value"]),
        nhs_number=patient.get("value") if isinstance(patient, dict) else None,
        owner_ods=_contained_ods(task),
        reason=reason,
        focus=focus.get("value") if isinstance(focus, dict) else None,
    )


def _held_by(record: Mapping[str, Any], dispenser: str) -> None:
    if record.get("dispenser") != dispenser:
        raise Forbidden("The prescription is not held by your organisation")


def return_prescription(record: Mapping[str, Any], dispenser: str) -> dict[str, Any]:
    _held_by(record, dispenser)
    status = next_status(PrescriptionStatus.from_code(record["status"]), Event.RETURN)
    pending = record.get("pendingCancellation") or {}
    items = []
    for item in record["items"]:
        changed = dict(item)
        if item["identifier"] in pending:
            changed["status"] = LineItemStatus.CANCELLED.code
        elif item["status"] == LineItemStatus.WITH_DISPENSER.code:
            changed["status"] = LineItemStatus.TO_BE_DISPENSED.code
        items.append(changed)
    if items and all(i["status"] == LineItemStatus.CANCELLED.code for i in items):
        status = next_status(status, Event.CANCEL)
    result = {**record, "status": status.code, "items": items, "dispenser": None}
    result.pop("pendingCancellation", None)
    return result


def parse_notification(bundle: Mapping[str, Any]) -> DispenseNotification:
    raw = bundle.get("entry")
    entries: list[Any] = raw if isinstance(raw, list) else []
    resources = [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]
    dispenses = [r for r in resources if r.get("resourceType") == "MedicationDispense"]
    if not dispenses:
        raise MissingValue("A dispense notification needs at least one MedicationDispense")
    prescription_ids, statuses, items = set(), set(), {}
    non_dispensing: set[Any] = set()
    for dispense in dispenses:
        requests = [
            c
            for c in dispense.get("contained", [])
            if isinstance(c, dict) and c.get("resourceType") == "MedicationRequest"
        ]
        if len(requests) != 1:
            raise InvalidValue("Each MedicationDispense must contain its MedicationRequest")
        prescription_ids.add((requests[0].get("groupIdentifier") or {}).get("value"))
        item_id = identifier_value(requests[0].get("identifier", []), ITEM_NUMBER)
        item_status = None
        for coding in (dispense.get("type") or {}).get("coding", []):
            item_status = coding.get("code")
        if not item_id or item_status not in _ITEM_CODES:
            raise InvalidValue("MedicationDispense needs a line item and a medicationdispense-type")
        items[item_id] = str(item_status)
        reason = None
        for extension in dispense.get("extension", []):
            if isinstance(extension, dict) and extension.get("url") == BUSINESS_STATUS:
                statuses.add((extension.get("valueCoding") or {}).get("code"))
            if isinstance(extension, dict) and extension.get("url") == NON_DISPENSING:
                reason = (extension.get("valueCoding") or {}).get("code")
        non_dispensing.add(reason)
    if len(prescription_ids) != 1 or None in prescription_ids:
        raise InvalidValue("Expected all MedicationDispenses to be for the same prescription")
    if len(non_dispensing) > 1:
        raise InvalidValue(
            "Expected all MedicationDispenses to have the same value for"
            " MedicationDispense.extension:prescriptionNonDispensingReason",
            expression=["MedicationDispense.extension:prescriptionNonDispensingReason"],
        )
    if len(statuses) != 1 or None in statuses:
        raise InvalidValue(
            "Expected all MedicationDispenses to have the same value for"
            " MedicationDispense.extension:taskBusinessStatus"
        )
    organisations = [r for r in resources if r.get("resourceType") == "Organization"]
    dispenser = (
        identifier_value(organisations[0].get("identifier", []), ODS) if organisations else None
    )
    if not dispenser:
        raise MissingValue("The dispense notification needs the dispensing Organization")
    identifier = (bundle.get("identifier") or {}).get("value") or ""
    replaces = None
    for resource in resources:
        if resource.get("resourceType") == "MessageHeader":
            for extension in resource.get("extension", []):
                if isinstance(extension, dict) and extension.get("url") == REPLACEMENT_OF:
                    replaces = (extension.get("valueIdentifier") or {}).get("value")
    return DispenseNotification(
        identifier=str(identifier),
        prescription_id=str(next(iter(prescription_ids))),
        dispenser_ods=dispenser.upper(),
        prescription_status=PrescriptionStatus.from_code(str(next(iter(statuses)))),
        items=items,
        replaces=replaces,
    )


def apply_notification(record: Mapping[str, Any], notice: DispenseNotification) -> dict[str, Any]:
    _held_by(record, notice.dispenser_ods)
    history = list(record.get("dispenseNotifications", []))
    current = PrescriptionStatus.from_code(record["status"])
    if notice.replaces is not None:
        if not history or history[-1]["identifier"] != notice.replaces:
            raise InvalidValue("Only the latest dispense notification can be amended")
        history.pop()
        current = PrescriptionStatus.from_code(
            history[-1]["status"] if history else PrescriptionStatus.WITH_DISPENSER.code
        )
    event = _EVENT_FOR.get(notice.prescription_status)
    if event is None:
        raise InvalidValue("taskBusinessStatus must be 0003, 0006 or 0007")
    status = next_status(current, event)
    known = {i["identifier"] for i in record["items"]}
    if not set(notice.items) <= known:
        raise InvalidValue("The dispense notification names a line item not on this prescription")
    items = [
        {**i, "status": notice.items.get(i["identifier"], i["status"])} for i in record["items"]
    ]
    history.append(
        {"identifier": notice.identifier, "status": status.code, "items": dict(notice.items)}
    )
    return {**record, "status": status.code, "items": items, "dispenseNotifications": history}


def withdraw(record: Mapping[str, Any], dispenser: str, focus: str | None) -> dict[str, Any]:
    _held_by(record, dispenser)
    history = list(record.get("dispenseNotifications", []))
    if not history:
        raise InvalidValue("There is no dispense notification to withdraw")
    if focus is not None and history[-1]["identifier"] != focus:
        raise InvalidValue("Only the latest dispense notification can be withdrawn")
    history.pop()
    current = PrescriptionStatus.from_code(record["status"])
    event = Event.WITHDRAW_TO_PARTIAL if history else Event.WITHDRAW_TO_RELEASED
    status = next_status(current, event)
    restored = history[-1]["items"] if history else {}
    items = [
        {**i, "status": restored.get(i["identifier"], LineItemStatus.WITH_DISPENSER.code)}
        if i["status"] != LineItemStatus.CANCELLED.code
        else dict(i)
        for i in record["items"]
    ]
    return {**record, "status": status.code, "items": items, "dispenseNotifications": history}
