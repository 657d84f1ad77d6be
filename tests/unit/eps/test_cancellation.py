"""Spine's cancellation decision for each state of a prescription."""

from __future__ import annotations

from typing import Any

import pytest

from openspine.eps.cancellation import CancelRequest, decide, parse_cancel, response_bundle
from openspine.platform.errors import MissingValue


def record(status: str, items: tuple[str, ...] = ("0007", "0007"), **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "items": [{"identifier": f"item-{n}", "status": s} for n, s in enumerate(items)],
        **extra,
    }


def request(item: str = "item-0", role_profile: str = "rp-1") -> CancelRequest:
    return CancelRequest(
        message_id="17773b27-427e-4940-8c16-64cdac715001",
        prescription_id="X",
        item_id=item,
        patient_nhs_number=None,
        role_profile_id=role_profile,
        reason={},
        medication_request={},
        resources=(),
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("0001", "R-0001"),
        ("9001", "R-0001"),
        ("0002", "R-0002"),
        ("0003", "R-0003"),
        ("0004", "R-0005"),
        ("0005", "R-0006"),
        ("0006", "R-0004"),
        ("0008", "R-0004"),
        ("0007", "R-0010"),
        ("0009", "R-0010"),
    ],
)
def test_r_code_for_each_prescription_status(status: str, code: str) -> None:
    assert decide(record(status), request()).code == code


def test_cancelling_the_last_item_cancels_the_prescription() -> None:
    first = decide(record("0001"), request("item-0"))
    assert first.record is not None
    assert first.record["status"] == "0001"
    last = decide(first.record, request("item-1"))
    assert last.record is not None
    assert last.record["status"] == "0005"
    future = decide(record("9001", ("0007",)), request())
    assert future.record is not None
    assert future.record["status"] == "9005"


def test_pending_cancellation_and_another_prescriber() -> None:
    pending = decide(record("0002"), request())
    assert pending.record is not None
    assert pending.record["pendingCancellation"] == {"item-0": "rp-1"}
    assert decide(pending.record, request(role_profile="rp-2")).code == "R-0007"
    assert decide(pending.record, request()).code == "R-0002"
    assert decide(pending.record, request()).record is None


def test_already_cancelled_item_and_unknown_item() -> None:
    assert decide(record("0001", ("0005", "0007")), request("item-0")).code == "R-0006"
    assert decide(record("0001"), request("item-9")).code == "R-0008"


def test_release_decisions() -> None:
    from openspine.eps.release import NotReleasable, WithAnotherDispenser, release

    fresh = {**record("0001"), "bundle": {"resourceType": "Bundle"}}
    released = release(fresh, "FA100")
    assert released.record is not None
    assert released.record["status"] == "0002"
    assert released.record["dispenser"] == "FA100"
    assert {i["status"] for i in released.record["items"]} == {"0008"}
    assert release(released.record, "FA100").record is None  # its own: downloaded again
    with pytest.raises(WithAnotherDispenser):
        release(released.record, "FB101")
    with pytest.raises(NotReleasable):
        release({**fresh, "status": "0005"}, "FA100")
    with pytest.raises(NotReleasable):
        release({**fresh, "status": "9001"}, "FA100")


def test_repeat_dispensing_next_issue_after_claim() -> None:
    from openspine.eps.claims import ClaimRequest, apply_claim

    erd = {
        **record("0006", ("0001",)),
        "patient": "9000000009",
        "treatment": "continuous-repeat-dispensing",
        "repeatsAllowed": 2,
        "issue": 1,
        "dispenser": "FA100",
    }
    claim = ClaimRequest("c1", "X", None, "FA100", None)
    second = apply_claim(erd, claim, "FA100")
    assert (second["issue"], second["status"], second["dispenser"]) == (2, "0001", None)
    assert second["items"][0]["status"] == "0007"
    assert second["previousIssues"][0]["status"] == "0008"
    last = apply_claim({**second, "status": "0006", "dispenser": "FA100"}, claim, "FA100")
    assert (last["issue"], last["status"]) == (2, "0008")  # the last issue stays claimed
    acute = {**erd, "treatment": "acute", "repeatsAllowed": None}
    assert apply_claim(acute, claim, "FA100")["status"] == "0008"


def test_tracker_task_is_valid_fhir_even_for_ids_ending_in_plus() -> None:
    from fhir.resources.R4B.task import Task

    from openspine.eps.service import tracker_task

    task = tracker_task(
        {
            **record("0002", ("0008",)),
            "prescriptionId": "4243A0-A99968-4E149+",
            "patient": "9000000009",
            "organisation": "A83008",
            "dispenser": "FA100",
            "repeatsAllowed": 3,
            "issue": 2,
        }
    )
    Task.model_validate(task)
    assert task["groupIdentifier"]["value"] == "4243A0-A99968-4E149+"
    assert task["businessStatus"]["coding"][0]["display"] == "With Dispenser"


def cancel_message(prescription_id: str, **bundle: Any) -> dict[str, Any]:
    medication_request = {
        "resourceType": "MedicationRequest",
        "status": "cancelled",
        "intent": "order",
        "subject": {"reference": "urn:uuid:78d3c2eb-009e-4ec8-a358-b042954aa9b2"},
        "medicationCodeableConcept": {"text": "Amoxicillin 250mg capsules"},
        "statusReason": {"coding": [{"code": "0001"}]},
        "groupIdentifier": {"value": prescription_id},
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": "a-1"}
        ],
    }
    return {"resourceType": "Bundle", "entry": [{"resource": medication_request}], **bundle}


def test_the_response_answers_the_request_message_not_the_prescription() -> None:
    # A prescription id's check character may be '+', which a FHIR id cannot hold.
    message = cancel_message("9E605B-A83008-E9E41+", identifier={"value": "46183abc-9fad"})
    message["entry"].insert(
        0,
        {
            "fullUrl": "urn:uuid:17773b27-427e-4940-8c16-64cdac715001",
            "resource": {"resourceType": "MessageHeader"},
        },
    )
    parsed = parse_cancel(message)
    assert parsed.message_id == "17773b27-427e-4940-8c16-64cdac715001"
    answer = response_bundle(parsed, "R-0001", "2026-11-24T00:00:00+00:00")
    header = answer["entry"][0]["resource"]
    assert header["response"] == {"identifier": parsed.message_id, "code": "ok"}
    assert answer["id"] == answer["identifier"]["value"] != parsed.message_id
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(answer)


def test_the_message_id_falls_back_to_the_bundle_identifier_and_must_exist() -> None:
    assert parse_cancel(cancel_message("P", identifier={"value": "m-1"})).message_id == "m-1"
    assert parse_cancel(cancel_message("P", id="b-1")).message_id == "b-1"
    with pytest.raises(MissingValue):
        parse_cancel(cancel_message("P", id="not an id+"))
