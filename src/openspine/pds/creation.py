"""POST /Patient: a new record, checked against the same field rules as an update.

The request body is the PDS ``PatientCreateRequest``: exactly one name, gender, date of birth,
addresses, optional telecom, and extensions including the (required) registering authority.
Extensions PDS does not persist are accepted and dropped, as PDS does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Final

import orjson

from openspine.pds.patching import COMMUNICATION, CONTACT_PREFERENCE, apply_patches
from openspine.pds.search_query import DateRange, SearchQuery, Text
from openspine.platform.errors import (
    AdditionalProperties,
    InvalidCreate,
    InvalidRequest,
    MissingValue,
    TooFewValuesSubmitted,
    TooManyValuesSubmitted,
)
from openspine.platform.normalise import normalise_name

__all__ = ["CreateRequest", "parse_create"]

REGISTERING_AUTHORITY: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RegisteringAuthority"
)
_ALLOWED: Final = frozenset(
    {"resourceType", "name", "gender", "birthDate", "address", "telecom", "extension"}
)
_REQUIRED: Final = ("name", "gender", "birthDate", "address", "extension")
_PERSISTED_EXTENSIONS: Final = frozenset({COMMUNICATION, CONTACT_PREFERENCE})
_VERIFIED: Final = {
    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
    "valueCodeableConcept": {
        "coding": [
            {
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                "version": "1.0.0",
                "code": "01",
                "display": "Number present and verified",
            }
        ]
    },
}


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A validated create request: the record's content, less its NHS number."""

    content: dict[str, Any]

    #: A candidate this close (same name, birth date and gender) is the same person.
    DUPLICATE_SCORE: ClassVar[float] = 1.0

    def resource(self, nhs_number: str) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": nhs_number,
            "identifier": [
                {
                    "system": "https://fhir.nhs.uk/Id/nhs-number",
                    "value": nhs_number,
                    "extension": [_VERIFIED],
                }
            ],
            "meta": {
                "versionId": "1",
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "U",
                        "display": "unrestricted",
                    }
                ],
            },
            **self.content,
        }

    def duplicate_query(self) -> SearchQuery:
        """Family, given names, date of birth and gender; history included (fuzzy off)."""
        name = self.content["name"][0]
        born = self.content["birthDate"]
        given = tuple(Text(normalise_name(g)) for g in name.get("given", []) if normalise_name(g))
        return SearchQuery(
            family=Text(normalise_name(str(name.get("family", "")))),
            given=given[:1],
            gender=self.content["gender"],
            birth=DateRange(born, born, exact=True),
            history=True,
            max_results=50,
        )


def parse_create(body: bytes, today: date) -> CreateRequest:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise InvalidRequest("The request body must be a Patient object")
    extra = sorted(set(request) - _ALLOWED)
    if extra:
        raise AdditionalProperties(
            f"Additional properties are not allowed ('{extra[0][:30]}' was unexpected)"
        )
    if request.get("resourceType", "Patient") != "Patient":
        raise InvalidRequest("resourceType must be Patient")
    for field in _REQUIRED:
        if field not in request:
            raise MissingValue(f"Missing value - '{field}'")
    names, addresses = request["name"], request["address"]
    if not isinstance(names, list) or not names:
        raise TooFewValuesSubmitted("Too few values submitted - 'name' needs one name")
    if len(names) > 1:
        raise TooManyValuesSubmitted("Too many values submitted - 'name' takes one name")
    if not isinstance(addresses, list) or not addresses:
        raise TooFewValuesSubmitted("Too few values submitted - 'address' needs an address")
    extensions = request["extension"]
    if not isinstance(extensions, list) or not any(
        isinstance(e, dict) and e.get("url") == REGISTERING_AUTHORITY for e in extensions
    ):
        raise MissingValue("Missing value - the registering authority extension is required")
    if not all(isinstance(x, dict) for x in [*names, *addresses]):
        raise InvalidCreate("Invalid create - each name and address must be an object")
    names = [{**n, "use": n.get("use", "usual")} for n in names]
    for address in addresses:
        if isinstance(address, dict):
            address.setdefault("use", "home")
    content: dict[str, Any] = {
        "name": names,
        "gender": request["gender"],
        "birthDate": request["birthDate"],
        "address": addresses,
    }
    if request.get("telecom"):
        content["telecom"] = request["telecom"]
    kept = [e for e in extensions if isinstance(e, dict) and e.get("url") in _PERSISTED_EXTENSIONS]
    if kept:
        content["extension"] = kept
    # The same field rules as an update, applied to an empty record.
    skeleton = {"resourceType": "Patient", "id": "0", "meta": {"versionId": "0"}}
    patches = [
        {"op": "add", "path": f"/{field}", "value": value} for field, value in content.items()
    ]
    checked = apply_patches(
        skeleton, {"patches": patches}, patient_mode=False, restricted=False, today=today
    )
    resource = checked.resource
    return CreateRequest({k: v for k, v in resource.items() if k in content})
