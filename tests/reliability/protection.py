"""The data-protection scan: no restricted patient's location data to anyone but themselves.

A restricted (S-flagged) patient's address, telecom, registered GP and nominated pharmacy or
supplier must never reach a caller other than the patient. The fields are listed here by hand,
not imported from the code under test, so that a mistake there cannot hide from this scan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

#: The fields of a Patient that reveal where a restricted patient can be found.
LOCATION_FIELDS = ("address", "telecom", "generalPractitioner", "contact", "managingOrganization")
#: Extensions that name the places a patient collects medicines from.
LOCATION_EXTENSION_WORDS = ("NominatedPharmacy", "PreferredDispenser", "MedicalApplianceSupplier")
RESTRICTED_CODES = frozenset({"R", "V"})


def _resources(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "resourceType" in value:
            yield value
        for child in value.values():
            yield from _resources(child)
    elif isinstance(value, list):
        for child in value:
            yield from _resources(child)


def _restricted(patient: dict[str, Any]) -> bool:
    security = patient.get("meta", {}).get("security", [])
    return any(isinstance(s, dict) and s.get("code") in RESTRICTED_CODES for s in security)


def exposures(body: bytes, caller_nhs_number: str | None) -> list[str]:
    """What ``body`` reveals of restricted patients other than the caller (empty: nothing)."""
    try:
        document = json.loads(body)
    except ValueError:
        return []
    found = []
    for resource in _resources(document):
        if resource.get("resourceType") != "Patient" or not _restricted(resource):
            continue
        if resource.get("id") == caller_nhs_number:
            continue
        for field in LOCATION_FIELDS:
            if field in resource:
                found.append(f"Patient/{resource.get('id')}.{field}")
        for extension in resource.get("extension", []):
            url = str(extension.get("url", "")) if isinstance(extension, dict) else ""
            if any(word in url for word in LOCATION_EXTENSION_WORDS):
                found.append(f"Patient/{resource.get('id')}.extension({url})")
    return found
