"""What each caller sees of a Patient: the search result field set and the searchset Bundle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from openspine.pds.demographics import historic_flags
from openspine.pds.domain import LOCATION_EXTENSIONS
from openspine.pds.fhir import restricted_view

__all__ = ["SEARCH_NAME_USES", "search_view", "searchset"]

#: Search results carry usual, nickname and temporary names and the home address only.
SEARCH_NAME_USES: Final = frozenset({"usual", "nickname", "temp"})
_DROPPED_EXTENSIONS: Final = frozenset(
    {
        *LOCATION_EXTENSIONS,
        "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication",
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference",
    }
)


def search_view(patient: dict[str, Any], *, restricted: bool) -> dict[str, Any]:
    """The reduced field set of a search result (PDS FHIR specification, search)."""
    view = restricted_view(patient) if restricted else dict(patient)
    names = [n for n in view.get("name", []) if n.get("use") in SEARCH_NAME_USES]
    if names:
        view["name"] = names
    else:
        view.pop("name", None)
    today = datetime.now(UTC).date().isoformat()
    addresses = view.get("address", [])
    homes = [
        a
        for a, historic in zip(addresses, historic_flags(addresses, today, "use"), strict=True)
        if a.get("use") == "home" and not historic
    ]
    if homes:
        view["address"] = homes
    else:
        view.pop("address", None)
    extensions = [e for e in view.get("extension", []) if e.get("url") not in _DROPPED_EXTENSIONS]
    if extensions:
        view["extension"] = extensions
    else:
        view.pop("extension", None)
    return view


def searchset(base_url: str, entries: Sequence[tuple[dict[str, Any], float]]) -> bytes:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": len(entries),
    }
    if entries:
        bundle["entry"] = [
            {
                "fullUrl": f"{base_url}/Patient/{resource['id']}",
                "search": {"score": score},
                "resource": resource,
            }
            for resource, score in entries
        ]
    return orjson.dumps(bundle)
