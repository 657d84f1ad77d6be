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


_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)
#: What the ASCII code of "0" adds to the weighted sum of the first nine digits.
_ZEROS: Final = 48 * sum(_WEIGHTS)
_CHI_LOW: Final = "0101010000"
_CHI_HIGH: Final = "3112999999"


def is_valid_nhs_number(value: str) -> bool:
    """Ten ASCII digits whose modulus 11 check digit holds.

    This is on every request's path, so the check is computed here, on the digits' bytes
    (well under 1 µs), rather than by the ``nhs-number`` package (about 20 µs: it normalises
    formats first); a unit test holds the two to the same answer over a large sample.
    """
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    d = value.encode()  # ASCII digits: byte 48 is "0"
    total = (
        (10 * d[0] + 9 * d[1] + 8 * d[2] + 7 * d[3] + 6 * d[4] + 5 * d[5] + 4 * d[6] + 3 * d[7])
        + 2 * d[8]
        - _ZEROS
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != d[9] - 48:
        return False
    # Scottish CHI numbers also encode a date of birth; the package holds that rule.
    return not (_CHI_LOW <= value <= _CHI_HIGH) or bool(is_valid(value))


def sees_restricted_fields(principal: Principal, patient_nhs_number: str) -> bool:
    """Only the patient, in patient access mode, sees their own restricted record in full.

    Healthcare workers and applications get the restricted view (PDS FHIR specification,
    "Restricted patients"); Spine's sensitive-record workflows happen outside this API.
    """
    return principal.mode is AccessMode.PATIENT and principal.nhs_number == patient_nhs_number
