"""Patient resources in the shape PDS returns them (UK Core Patient, NHS extensions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PatientFacts", "patient_resource"]

UK = "https://fhir.hl7.org.uk/StructureDefinition/"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

_FORMAL_DEATH = "Formal - death notice received from Registrar of Deaths"
_VERIFIED = {
    "url": UK + "Extension-UKCore-NHSNumberVerificationStatus",
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


@dataclass(slots=True)
class PatientFacts:
    """What makes one patient; ``None`` leaves the element out (as PDS does)."""

    nhs_number: str
    version: int = 1
    restricted: bool = False
    family: str | None = None
    given: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)
    suffix: list[str] = field(default_factory=list)
    gender: str | None = None
    birth_date: str | None = None
    deceased: str | None = None
    multiple_birth: int | None = None
    address_lines: list[str] = field(default_factory=list)
    postcode: str | None = None
    address_since: str | None = None
    phone: str | None = None
    email: str | None = None
    gp_ods: str | None = None
    gp_since: str | None = None
    pharmacy_ods: str | None = None
    previous_family: str | None = None
    previous_address_lines: list[str] = field(default_factory=list)
    previous_postcode: str | None = None
    previous_until: str | None = None


def _ods_reference(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": code}}


def patient_resource(f: PatientFacts) -> dict[str, Any]:
    security = {
        "system": CONFIDENTIALITY,
        "code": "R" if f.restricted else "U",
        "display": "restricted" if f.restricted else "unrestricted",
    }
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f.nhs_number,
        "identifier": [{"system": NHS_NUMBER, "value": f.nhs_number, "extension": [_VERIFIED]}],
        "meta": {"versionId": str(f.version), "security": [security]},
    }
    if f.family is not None:
        name: dict[str, Any] = {"id": "1", "use": "usual", "family": f.family}
        if f.given:
            name["given"] = f.given
        if f.prefix:
            name["prefix"] = f.prefix
        if f.suffix:
            name["suffix"] = f.suffix
        patient["name"] = [name]
        if f.previous_family is not None:
            old: dict[str, Any] = {"id": "2", "use": "old", "family": f.previous_family}
            if f.given:
                old["given"] = f.given
            if f.birth_date and f.previous_until:
                old["period"] = {"start": f.birth_date, "end": f.previous_until}
            patient["name"].append(old)
    if f.gender is not None:
        patient["gender"] = f.gender
    if f.birth_date is not None:
        patient["birthDate"] = f.birth_date
    if f.deceased is not None:
        patient["deceasedDateTime"] = f.deceased
    if f.multiple_birth is not None:
        patient["multipleBirthInteger"] = f.multiple_birth
    if f.gp_ods is not None:
        gp: dict[str, Any] = {
            "id": "1",
            "type": "Organization",
            "identifier": {"system": ODS, "value": f.gp_ods},
        }
        if f.gp_since:
            gp["identifier"]["period"] = {"start": f.gp_since}
        patient["generalPractitioner"] = [gp]
    extensions: list[dict[str, Any]] = []
    if f.pharmacy_ods is not None:
        extensions.append(
            {
                "url": UK + "Extension-UKCore-NominatedPharmacy",
                "valueReference": _ods_reference(f.pharmacy_ods),
            }
        )
    if f.deceased is not None:
        extensions.append(
            {
                "url": UK + "Extension-UKCore-DeathNotificationStatus",
                "extension": [
                    {
                        "url": "deathNotificationStatus",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus",
                                    "version": "1.0.0",
                                    "code": "2",
                                    "display": _FORMAL_DEATH,
                                }
                            ]
                        },
                    },
                    {"url": "systemEffectiveDate", "valueDateTime": f.deceased},
                ],
            }
        )
    if extensions:
        patient["extension"] = extensions
    telecom = []
    if f.phone is not None:
        telecom.append({"id": "1", "system": "phone", "value": f.phone, "use": "home"})
    if f.email is not None:
        telecom.append({"id": "2", "system": "email", "value": f.email, "use": "home"})
    if telecom:
        patient["telecom"] = telecom
    if f.postcode is not None:
        address: dict[str, Any] = {
            "id": "1",
            "use": "home",
            "line": f.address_lines,
            "postalCode": f.postcode,
        }
        if f.address_since:
            address["period"] = {"start": f.address_since}
        patient["address"] = [address]
        if f.previous_postcode is not None:
            previous: dict[str, Any] = {
                "id": "2",
                "use": "home",
                "line": f.previous_address_lines,
                "postalCode": f.previous_postcode,
            }
            if f.birth_date and f.previous_until:
                previous["period"] = {"start": f.birth_date, "end": f.previous_until}
            patient["address"].append(previous)
    return patient
