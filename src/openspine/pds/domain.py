"""PDS rules that need no I/O: NHS numbers, restricted records, superseded chains."""

from __future__ import annotations

from typing import Final

from nhs_number.validate import is_valid

from openspine.platform.security.principal import AccessMode, Principal

__all__ = [
    "LOCATION_EXTENSIONS",
    "MAX_SUPERSEDED_HOPS",
    "RESTRICTED_FIELDS",
    "is_valid_nhs_number",
    "sees_restricted_fields",
]

#: Fields removed from a restricted (sensitive) patient's record: they reveal where they are.
RESTRICTED_FIELDS: Final = (
    "address",
    "telecom",
    "generalPractitioner",
    "contact",
    "managingOrganization",
)

#: Extensions that name a place the patient goes to, removed with the fields above.
LOCATION_EXTENSIONS: Final = frozenset(
    {
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy",
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-PreferredDispenserOrganization",
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicalApplianceSupplier",
    }
)

#: A superseded record points at its survivor; a longer chain than this is a data fault.
MAX_SUPERSEDED_HOPS: Final = 8


def is_valid_nhs_number(value: str) -> bool:
    """Ten digits whose modulus 11 check digit holds (the ``nhs-number`` package decides)."""
    return len(value) == 10 and value.isascii() and value.isdigit() and bool(is_valid(value))


def sees_restricted_fields(principal: Principal, patient_nhs_number: str) -> bool:
    """Only the patient, in patient access mode, sees their own restricted record in full.

    Healthcare workers and applications get the restricted view (PDS FHIR specification,
    "Restricted patients"); Spine's sensitive-record workflows happen outside this API.
    """
    return principal.mode is AccessMode.PATIENT and principal.nhs_number == patient_nhs_number
