"""EPS rules without I/O: short-form prescription IDs and the prescription state machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from openspine.eps.prescription_id import check_character, is_valid, new_prescription_id
from openspine.eps.status import (
    TERMINAL,
    TRANSITIONS,
    Event,
    InvalidStateTransition,
    LineItemStatus,
    PrescriptionStatus,
    next_status,
)
from tests.conftest import REFERENCE

EXAMPLES = REFERENCE / "eps" / "examples"
ORDER_NUMBER = "https://fhir.nhs.uk/Id/prescription-order-number"
#: Two secondary-care homecare examples carry IDs whose check character does not hold (the NHS
#: sandbox does not check it; Spine refuses such IDs, as the INVALID_CHECKSUM example shows).
KNOWN_BAD_IN_EXAMPLES = frozenset({"561479-395879-521272", "887228-510420-124913"})


def _example_ids() -> tuple[set[str], set[str]]:
    """Prescription IDs of the NHS examples: those sent in 200 requests, and the 'bad checksum'."""
    good: set[str] = set()
    bad: set[str] = set()
    for path in EXAMPLES.rglob("*.json"):
        text = path.read_text()
        for match in re.finditer(
            r'"system":\s*"' + re.escape(ORDER_NUMBER) + r'",\s*"value":\s*"([^"]+)"', text
        ):
            (bad if "INVALID_CHECKSUM" in path.name else good).add(match.group(1))
    return good, bad


def test_every_nhs_example_prescription_id_checks_and_the_bad_one_does_not() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip(f"NHS reference material not present at {EXAMPLES}")
    good, bad = _example_ids()
    assert good >= KNOWN_BAD_IN_EXAMPLES
    assert not any(is_valid(value) for value in KNOWN_BAD_IN_EXAMPLES)
    good -= KNOWN_BAD_IN_EXAMPLES
    assert len(good) > 30
    assert all(is_valid(value) for value in good), sorted(v for v in good if not is_valid(v))
    assert bad
    assert not any(is_valid(value) for value in bad)


def test_new_ids_are_valid_and_carry_the_organisation() -> None:
    for ods in ("A83008", "RRE", "y12345"):
        value = new_prescription_id(ods)
        assert is_valid(value), value
        assert value[7:13] == ods.upper().rjust(6, "0")


def test_check_character_catches_single_changes() -> None:
    value = new_prescription_id("A83008")
    body = value[:-1]
    for i, ch in enumerate(body):
        if ch == "-":
            continue
        replacement = "0" if ch != "0" else "1"
        changed = body[:i] + replacement + body[i + 1 :]
        assert check_character(changed) != value[-1]
    assert not is_valid(value.lower())
    assert not is_valid(value[:-1])


def test_statuses_match_the_nhs_code_systems() -> None:
    assert PrescriptionStatus.WITH_DISPENSER_ACTIVE.code == "0003"
    assert PrescriptionStatus.WITH_DISPENSER_ACTIVE.display == "With Dispenser - Active"
    assert PrescriptionStatus.from_code("9001") is PrescriptionStatus.FUTURE_DATED
    assert LineItemStatus.WITH_DISPENSER.code == "0008"
    assert LineItemStatus.PARTIALLY_DISPENSED.display == "Item dispensed - partial"
    if EXAMPLES.is_dir():
        seen: dict[str, str] = {}
        for path in EXAMPLES.rglob("*.json"):
            try:
                document = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
            for coding in _codings(
                document, "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status"
            ):
                seen[coding["code"]] = coding["display"]
        assert seen
        for code, display in seen.items():
            assert PrescriptionStatus.from_code(code).display == display


def _codings(node: object, system: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    if isinstance(node, dict):
        if node.get("system") == system and "code" in node and "display" in node:
            found.append(node)
        for value in node.values():
            found.extend(_codings(value, system))
    elif isinstance(node, list):
        for value in node:
            found.extend(_codings(value, system))
    return found


def test_lifecycle_of_an_acute_prescription() -> None:
    status = PrescriptionStatus.TO_BE_DISPENSED
    for event, expected in [
        (Event.RELEASE, PrescriptionStatus.WITH_DISPENSER),
        (Event.DISPENSE_PARTIAL, PrescriptionStatus.WITH_DISPENSER_ACTIVE),
        (Event.DISPENSE_FULL, PrescriptionStatus.DISPENSED),
        (Event.CLAIM, PrescriptionStatus.CLAIMED),
        (Event.CLAIM_AMEND, PrescriptionStatus.CLAIMED),
    ]:
        status = next_status(status, event)
        assert status is expected


def test_everything_not_in_the_table_is_refused() -> None:
    allowed = set(TRANSITIONS)
    for status in PrescriptionStatus:
        for event in Event:
            if (status, event) in allowed:
                continue
            with pytest.raises(InvalidStateTransition) as caught:
                next_status(status, event)
            assert caught.value.code == "PRESCRIPTION_INVALID_STATE_TRANSITION"
    for status in TERMINAL:
        assert not any(s is status for s, _ in allowed)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (PrescriptionStatus.DISPENSED, Event.RELEASE),
        (PrescriptionStatus.CANCELLED, Event.RELEASE),
        (PrescriptionStatus.WITH_DISPENSER_ACTIVE, Event.RETURN),
        (PrescriptionStatus.CLAIMED, Event.WITHDRAW_TO_RELEASED),
        (PrescriptionStatus.FUTURE_DATED, Event.RELEASE),
    ],
)
def test_typical_refusals(status: PrescriptionStatus, event: Event) -> None:
    with pytest.raises(InvalidStateTransition):
        next_status(status, event)


def test_expiry_rules() -> None:
    assert (
        next_status(PrescriptionStatus.TO_BE_DISPENSED, Event.EXPIRE) is PrescriptionStatus.EXPIRED
    )
    # Partly dispensed when the prescription expires: what was dispensed stands.
    assert (
        next_status(PrescriptionStatus.WITH_DISPENSER_ACTIVE, Event.EXPIRE)
        is PrescriptionStatus.DISPENSED
    )


def test_reference_folder_constant_is_a_path() -> None:
    assert isinstance(EXAMPLES, Path)
