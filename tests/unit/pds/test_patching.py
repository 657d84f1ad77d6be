"""The PATCH rules without I/O: list items by id, test before remove, restricted records."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from openspine.pds.fhir import restricted_view, with_hidden_fields
from openspine.pds.patching import NOMINATED_PHARMACY, apply_patches
from openspine.platform.errors import ForbiddenUpdate, InvalidUpdate, InvalidValue

TODAY = date(2026, 11, 23)
PHARMACY = {
    "url": NOMINATED_PHARMACY,
    "valueReference": {"identifier": {"system": "x", "value": "FA123"}},
}
BIRTH_PLACE = {
    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
    "valueAddress": {"city": "Leeds"},
}


def record() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "9000000009",
        "meta": {"versionId": "1", "security": [{"code": "R"}]},
        "name": [
            {"id": "2", "use": "usual", "family": "Parker", "period": {"start": "2000-01-01"}},
            {"id": "3", "use": "old", "family": "Irwin", "period": {"start": "2000-01-01"}},
            {"id": "4", "use": "old", "family": "Bruce", "period": {"start": "2000-01-01"}},
            {"id": "5", "use": "old", "family": "Sharpe", "period": {"start": "2000-01-01"}},
        ],
        "gender": "female",
        "birthDate": "1990-01-01",
        "address": [{"id": "A1", "use": "home", "line": ["1 A St"], "postalCode": "LS1 6AE"}],
        "extension": [PHARMACY, BIRTH_PLACE],
    }


def apply(patches: list[dict[str, Any]], current: dict[str, Any] | None = None) -> dict[str, Any]:
    result = apply_patches(
        current or record(),
        {"patches": patches},
        patient_mode=False,
        restricted=False,
        today=TODAY,
    )
    return result.resource


def families(patient: dict[str, Any]) -> list[str]:
    return [n["family"] for n in patient["name"]]


def test_the_specifications_removal_examples() -> None:
    example_1 = [
        {"op": "test", "path": "/name/1/id", "value": "3"},
        {"op": "remove", "path": "/name/1"},
        {"op": "test", "path": "/name/1/id", "value": "4"},
        {"op": "remove", "path": "/name/1"},
    ]
    assert families(apply(example_1)) == ["Parker", "Sharpe"]
    example_2 = [
        {"op": "test", "path": "/name/2/id", "value": "4"},
        {"op": "remove", "path": "/name/2"},
        {"op": "test", "path": "/name/1/id", "value": "3"},
        {"op": "remove", "path": "/name/1"},
    ]
    assert families(apply(example_2)) == ["Parker", "Sharpe"]
    example_3 = [
        {"op": "test", "path": "/name/1/id", "value": "3"},
        {"op": "remove", "path": "/name/1"},
        {"op": "test", "path": "/name/2/id", "value": "4"},
        {"op": "remove", "path": "/name/2"},
    ]
    with pytest.raises(InvalidUpdate):
        apply(example_3)


def test_remove_after_a_whole_object_test() -> None:
    whole = record()["name"][3]
    patches = [
        {"op": "test", "path": "/name/3", "value": whole},
        {"op": "remove", "path": "/name/3"},
    ]
    assert families(apply(patches)) == ["Parker", "Irwin", "Bruce"]


def test_usual_name_cannot_be_removed_and_use_cannot_change() -> None:
    with pytest.raises(InvalidUpdate):
        apply(
            [
                {"op": "test", "path": "/name/0/id", "value": "2"},
                {"op": "remove", "path": "/name/0"},
            ]
        )
    with pytest.raises(InvalidUpdate):
        apply(
            [
                {"op": "test", "path": "/name/1/id", "value": "3"},
                {"op": "replace", "path": "/name/1/use", "value": "nickname"},
            ]
        )


def test_new_items_get_ids_and_todays_period() -> None:
    patched = apply(
        [{"op": "add", "path": "/name/-", "value": {"use": "nickname", "given": ["P"]}}]
    )
    added = patched["name"][-1]
    assert len(added["id"]) == 8
    assert added["period"] == {"start": "2026-11-23"}


def test_temp_address_needs_text_and_an_end() -> None:
    temp = {"use": "temp", "line": ["Flat 1", "Leeds"], "period": {"start": "2026-11-01"}}
    with pytest.raises(InvalidValue):
        apply([{"op": "add", "path": "/address/-", "value": temp}])
    with pytest.raises(InvalidUpdate):
        apply([{"op": "add", "path": "/address/-", "value": {**temp, "text": "Second Home"}}])
    ok = {**temp, "text": "Second Home", "period": {"start": "2026-11-01", "end": "2026-12-01"}}
    assert apply([{"op": "add", "path": "/address/-", "value": ok}])["address"][1]["use"] == "temp"


def test_wrongly_shaped_values_are_invalid_not_errors() -> None:
    with pytest.raises(InvalidValue):
        apply([{"op": "add", "path": "/name/-", "value": {"use": "old", "given": 7}}])


def test_restricted_record_is_patched_as_seen_and_keeps_its_hidden_data() -> None:
    full = record()
    view = restricted_view(full)
    assert view["extension"] == [BIRTH_PLACE]  # the pharmacy is hidden, so indexes differ
    patched = apply_patches(
        view,
        {
            "patches": [
                {"op": "test", "path": "/extension/0/url", "value": BIRTH_PLACE["url"]},
                {"op": "remove", "path": "/extension/0"},
            ]
        },
        patient_mode=False,
        restricted=True,
        today=TODAY,
    )
    merged = with_hidden_fields(full, patched.resource)
    assert merged["extension"] == [PHARMACY]
    assert merged["address"] == full["address"]
    with pytest.raises(ForbiddenUpdate):
        apply_patches(
            copy.deepcopy(view),
            {"patches": [{"op": "add", "path": "/address/-", "value": full["address"][0]}]},
            patient_mode=False,
            restricted=True,
            today=TODAY,
        )


def test_restricted_record_cannot_gain_a_hidden_kind_of_extension() -> None:
    view = restricted_view(record())
    with pytest.raises(ForbiddenUpdate):
        apply_patches(
            view,
            {"patches": [{"op": "add", "path": "/extension/-", "value": PHARMACY}]},
            patient_mode=False,
            restricted=True,
            today=TODAY,
        )


@pytest.mark.parametrize("index", ["\u00b2", "\u0661", "0x1"])
def test_list_index_must_be_ascii_digits(index: str) -> None:
    """str.isdigit() accepts superscript and Arabic-Indic digits, which int() refuses."""
    with pytest.raises((InvalidUpdate, InvalidValue)):
        apply(
            [
                {"op": "test", "path": f"/name/{index}/id", "value": "x"},
                {"op": "remove", "path": f"/name/{index}"},
            ]
        )
