"""The prescription state machine: Spine's prescription and line item statuses, and the only
transitions between them (anything else is ``PRESCRIPTION_INVALID_STATE_TRANSITION``).

Status codes and names are those of the NHS code systems ``EPS-task-business-status``
(prescriptions) and ``medicationdispense-type`` (line items). The transition table is our
model of Spine's (ADR 0011); it is data, tested exhaustively, and every EPS use case goes
through :func:`next_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Final, Self

from openspine.platform.errors import SpineError

__all__ = [
    "TRANSITIONS",
    "Event",
    "InvalidStateTransition",
    "LineItemStatus",
    "PrescriptionStatus",
    "next_status",
]


class InvalidStateTransition(SpineError):
    status = 400
    code = "PRESCRIPTION_INVALID_STATE_TRANSITION"
    display = "The requested operation is not valid for the current state of the prescription."
    issue_type = "business-rule"


class _Coded(Enum):
    """An enumeration whose values are (code, display) pairs of an NHS code system."""

    @property
    def code(self) -> str:
        return str(self.value[0])

    @property
    def display(self) -> str:
        return str(self.value[1])

    @classmethod
    def from_code(cls, code: str) -> Self:
        for member in cls:
            if member.code == code:
                return member
        raise ValueError(f"unknown {cls.__name__} code {code!r}")


class PrescriptionStatus(_Coded):
    """Prescription (and prescription issue) statuses, code and display."""

    AWAITING_RELEASE_READY = ("0000", "Awaiting Release Ready")
    TO_BE_DISPENSED = ("0001", "To Be Dispensed")
    WITH_DISPENSER = ("0002", "With Dispenser")
    WITH_DISPENSER_ACTIVE = ("0003", "With Dispenser - Active")
    EXPIRED = ("0004", "Expired")
    CANCELLED = ("0005", "Cancelled")
    DISPENSED = ("0006", "Dispensed")
    NOT_DISPENSED = ("0007", "Not Dispensed")
    CLAIMED = ("0008", "Claimed")
    NO_CLAIMED = ("0009", "No-Claimed")
    REPEAT_DISPENSE_FUTURE_INSTANCE = ("9000", "Repeat Dispense future instance")
    FUTURE_DATED = ("9001", "Prescription future instance")
    CANCELLED_FUTURE_INSTANCE = ("9005", "Cancelled future instance")


class LineItemStatus(_Coded):
    """Line item statuses (``medicationdispense-type``), code and display."""

    FULLY_DISPENSED = ("0001", "Item fully dispensed")
    NOT_DISPENSED = ("0002", "Item not dispensed")
    PARTIALLY_DISPENSED = ("0003", "Item dispensed - partial")
    NOT_DISPENSED_OWING = ("0004", "Item not dispensed owing")
    CANCELLED = ("0005", "Item cancelled")
    EXPIRED = ("0006", "Expired")
    TO_BE_DISPENSED = ("0007", "Item to be dispensed")
    WITH_DISPENSER = ("0008", "Item with dispenser")


class Event(StrEnum):
    ACTIVATE = "activate"  # a future-dated prescription or the next eRD issue becomes due
    RELEASE = "release"
    RETURN = "return"
    DISPENSE_PARTIAL = "dispense-partial"
    DISPENSE_FULL = "dispense-full"
    NOT_DISPENSED = "not-dispensed"
    WITHDRAW_TO_RELEASED = "withdraw-to-released"  # the last dispense notification withdrawn
    WITHDRAW_TO_PARTIAL = "withdraw-to-partial"  # … leaving an earlier partial one in force
    CANCEL = "cancel"
    CANCEL_PENDING = "cancel-pending"  # with a dispenser: completed when it is returned
    EXPIRE = "expire"
    CLAIM = "claim"
    CLAIM_AMEND = "claim-amend"


S = PrescriptionStatus
E = Event

#: Every allowed (status, event) → next status. Absent means not allowed.
TRANSITIONS: Final[Mapping[tuple[PrescriptionStatus, Event], PrescriptionStatus]] = {
    (S.AWAITING_RELEASE_READY, E.ACTIVATE): S.TO_BE_DISPENSED,
    (S.AWAITING_RELEASE_READY, E.CANCEL): S.CANCELLED,
    (S.AWAITING_RELEASE_READY, E.EXPIRE): S.EXPIRED,
    (S.FUTURE_DATED, E.ACTIVATE): S.TO_BE_DISPENSED,
    (S.FUTURE_DATED, E.CANCEL): S.CANCELLED_FUTURE_INSTANCE,
    (S.REPEAT_DISPENSE_FUTURE_INSTANCE, E.ACTIVATE): S.TO_BE_DISPENSED,
    (S.REPEAT_DISPENSE_FUTURE_INSTANCE, E.CANCEL): S.CANCELLED_FUTURE_INSTANCE,
    (S.REPEAT_DISPENSE_FUTURE_INSTANCE, E.EXPIRE): S.EXPIRED,
    (S.TO_BE_DISPENSED, E.RELEASE): S.WITH_DISPENSER,
    (S.TO_BE_DISPENSED, E.CANCEL): S.CANCELLED,
    (S.TO_BE_DISPENSED, E.EXPIRE): S.EXPIRED,
    (S.WITH_DISPENSER, E.RETURN): S.TO_BE_DISPENSED,
    (S.WITH_DISPENSER, E.DISPENSE_PARTIAL): S.WITH_DISPENSER_ACTIVE,
    (S.WITH_DISPENSER, E.DISPENSE_FULL): S.DISPENSED,
    (S.WITH_DISPENSER, E.NOT_DISPENSED): S.NOT_DISPENSED,
    (S.WITH_DISPENSER, E.CANCEL_PENDING): S.WITH_DISPENSER,
    (S.WITH_DISPENSER, E.EXPIRE): S.EXPIRED,
    (S.WITH_DISPENSER_ACTIVE, E.DISPENSE_PARTIAL): S.WITH_DISPENSER_ACTIVE,
    (S.WITH_DISPENSER_ACTIVE, E.DISPENSE_FULL): S.DISPENSED,
    (S.WITH_DISPENSER_ACTIVE, E.WITHDRAW_TO_RELEASED): S.WITH_DISPENSER,
    (S.WITH_DISPENSER_ACTIVE, E.WITHDRAW_TO_PARTIAL): S.WITH_DISPENSER_ACTIVE,
    (S.WITH_DISPENSER_ACTIVE, E.CANCEL_PENDING): S.WITH_DISPENSER_ACTIVE,
    (S.WITH_DISPENSER_ACTIVE, E.EXPIRE): S.DISPENSED,
    (S.DISPENSED, E.WITHDRAW_TO_RELEASED): S.WITH_DISPENSER,
    (S.DISPENSED, E.WITHDRAW_TO_PARTIAL): S.WITH_DISPENSER_ACTIVE,
    (S.DISPENSED, E.CLAIM): S.CLAIMED,
    (S.NOT_DISPENSED, E.WITHDRAW_TO_RELEASED): S.WITH_DISPENSER,
    (S.NOT_DISPENSED, E.CLAIM): S.NO_CLAIMED,
    (S.CLAIMED, E.CLAIM_AMEND): S.CLAIMED,
    (S.NO_CLAIMED, E.CLAIM_AMEND): S.NO_CLAIMED,
}

#: No event leaves these.
TERMINAL: Final = frozenset({S.EXPIRED, S.CANCELLED, S.CANCELLED_FUTURE_INSTANCE})


def next_status(current: PrescriptionStatus, event: Event) -> PrescriptionStatus:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidStateTransition(
            f"Invalid state transition: '{event.value}' is not allowed for a prescription that"
            f" is '{current.display}' ({current.code})"
        ) from None
