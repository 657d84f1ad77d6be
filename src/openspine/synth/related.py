"""RelatedPerson records for the sandbox patients (carers, guardians, emergency contacts)."""

from __future__ import annotations

from typing import Any

import orjson

from openspine.pds.ports import RELATED_PERSONS
from openspine.platform.storage.ports import PutResource

__all__ = ["related_person_puts"]

_ROLE = "https://fhir.nhs.uk/R4/CodeSystem/UKCore-AdditionalRelatedPersonRole"
_V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
_EXT = "https://fhir.nhs.uk/R4/StructureDefinition/"


def _person(
    rid: str,
    nhs_number: str,
    name: tuple[str, str, str],
    role: tuple[str, str, str],
    rank: int,
) -> dict[str, Any]:
    prefix, given, family = name
    person: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": rid,
        "active": True,
        "period": {"start": "2020-01-01"},
        "name": [{"use": "usual", "prefix": [prefix], "given": [given], "family": family}],
        "relationship": [{"coding": [{"system": role[0], "code": role[1], "display": role[2]}]}],
        "extension": [
            {"url": _EXT + "Extension-UKCore-CopyCorrespondenceIndicator", "valueBoolean": True},
            {"url": _EXT + "Extension-UKCore-ContactRank", "valuePositiveInt": rank},
        ],
    }
    # As in PDS: the related person's own NHS number where they have one, else the patient's.
    person["patient"] = {
        "type": "Patient",
        "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number},
    }
    return person


#: NHS number → its related people.
RELATED: dict[str, list[dict[str, Any]]] = {
    "9000000009": [
        _person(
            "507B7621", "9000000017", ("Mrs", "Jayne", "Smyth"), (_V3_ROLE, "MTH", "mother"), 1
        ),
        _person(
            "B3380E98",
            "9000000009",
            ("Mr", "Robert", "Smith"),
            (_ROLE, "Guardian", "Guardian of patient"),
            2,
        ),
    ],
    "9000000017": [
        _person(
            "F4CF8B96",
            "9000000017",
            ("Mrs", "Jane", "Smith"),
            (_ROLE, "Guardian", "Guardian of patient"),
            1,
        )
    ],
    "9000000025": [
        _person("2C0E4D61", "9000000025", ("Mr", "Tom", "Smythe"), (_V3_ROLE, "FTH", "father"), 1)
    ],
}


def related_person_puts() -> list[PutResource]:
    return [
        PutResource(RELATED_PERSONS, nhs, 1, orjson.dumps(people), None)
        for nhs, people in RELATED.items()
    ]
