"""The resource types PDS keeps in the platform store."""

from __future__ import annotations

from typing import Final

__all__ = ["PATIENT", "RELATED_PERSONS"]

PATIENT: Final = "Patient"
#: A patient's RelatedPerson resources, kept as one list under the patient's NHS number.
RELATED_PERSONS: Final = "PatientRelatedPersons"
