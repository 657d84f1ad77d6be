"""``Task/$release``: who may take a prescription to dispense, decided on the stored record.

By prescription ID, any dispenser may release a prescription that is To Be Dispensed (the
patient brought the token); by nominated release (no ID), a dispenser gets up to 25 of the
prescriptions nominated to its own organisation. Releasing moves the prescription to With
Dispenser and its items to Item with dispenser, recording the dispenser; a prescription already
with another dispenser answers ``PRESCRIPTION_WITH_ANOTHER_DISPENSER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from openspine.eps.order import ODS, ORDER_NUMBER
from openspine.eps.status import (
    Event,
    InvalidStateTransition,
    LineItemStatus,
    PrescriptionStatus,
    next_status,
)
from openspine.platform.errors import InvalidValue, MissingValue

__all__ = [
    "NOMINATED_BATCH",
    "NotReleasable",
    "ReleaseRequest",
    "Released",
    "WithAnotherDispenser",
    "parse_release",
    "release",
]

NOMINATED_BATCH: Final = 25


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    owner_ods: str
    prescription_id: str | None


@dataclass(frozen=True, slots=True)
class Released:
    record: dict[str, Any] | None  # the changed record; None when it was already released to us
    bundle: Mapping[str, Any]


class WithAnotherDispenser(Exception):
    def __init__(self, dispenser: str) -> None:
        super().__init__(dispenser)
        self.dispenser = dispenser


class NotReleasable(Exception):
    def __init__(self, status: PrescriptionStatus) -> None:
        super().__init__(status.display)
        self.status = status


def parse_release(parameters: Mapping[str, Any]) -> ReleaseRequest:
    if parameters.get("resourceType") != "Parameters":
        raise InvalidValue("Incorrect FHIR resource type. Expected Parameters.")
    owner = prescription_id = None
    for parameter in parameters.get("parameter", []):
        if not isinstance(parameter, dict):
            continue
        if parameter.get("name") == "owner":
            identifiers = (parameter.get("resource") or {}).get("identifier", [])
            owner = next(
                (
                    i.get("value")
                    for i in identifiers
                    if isinstance(i, dict) and i.get("system") == ODS
                ),
                None,
            )
        if parameter.get("name") == "group-identifier":
            identifier = parameter.get("valueIdentifier") or {}
            if identifier.get("system") != ORDER_NUMBER or not identifier.get("value"):
                raise InvalidValue("group-identifier must be a prescription-order-number")
            prescription_id = str(identifier["value"])
    if not owner:
        raise MissingValue("Parameters must carry the owner Organization with its ODS code")
    return ReleaseRequest(str(owner).upper(), prescription_id)


def release(record: Mapping[str, Any], owner_ods: str) -> Released:
    """Release ``record`` to ``owner_ods``, or raise why it cannot be."""
    status = PrescriptionStatus.from_code(record["status"])
    dispenser = record.get("dispenser")
    if status in (PrescriptionStatus.WITH_DISPENSER, PrescriptionStatus.WITH_DISPENSER_ACTIVE):
        if dispenser != owner_ods:
            raise WithAnotherDispenser(str(dispenser))
        return Released(None, record["bundle"])  # a dispenser may download its own again
    try:
        new_status = next_status(status, Event.RELEASE)
    except InvalidStateTransition:
        raise NotReleasable(status) from None
    changed = {**record, "status": new_status.code, "dispenser": owner_ods}
    changed["items"] = [
        {**item, "status": LineItemStatus.WITH_DISPENSER.code}
        if item["status"] == LineItemStatus.TO_BE_DISPENSED.code
        else dict(item)
        for item in record["items"]
    ]
    return Released(changed, record["bundle"])
