"""Legitimate relationships: may this caller see this patient's record?

A domain rule with no I/O. The service gathers the facts (the patient's registered GP practice,
nominated pharmacy, open referrals) and asks :func:`check_relationship`; a healthcare worker
without a relationship may self-claim an emergency reason, which is allowed, audited with the
reason, and raises an alert to the organisation's privacy officer (the caller writes both in the
same unit of work). PDS reads need no relationship; EPS, SCR and others call this.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from openspine.platform.errors import Forbidden
from openspine.platform.security.principal import AccessMode, Principal

__all__ = [
    "EmergencyReason",
    "PatientRelationships",
    "RelationshipBasis",
    "RelationshipDecision",
    "check_relationship",
]


class RelationshipBasis(StrEnum):
    REGISTERED_PRACTICE = "registered-gp-practice"
    NOMINATED_PHARMACY = "nominated-pharmacy"
    REFERRAL = "referral"
    EMERGENCY = "self-claimed-emergency"
    PATIENT_SELF = "patient-self"
    APPLICATION = "application-restricted"


class EmergencyReason(StrEnum):
    """Reasons a worker may claim when no relationship exists (recorded verbatim in the audit)."""

    EMERGENCY_CARE = "emergency-care"
    PATIENT_CONSENT_AT_POINT_OF_CARE = "patient-consent"
    SAFEGUARDING = "safeguarding"


@dataclass(frozen=True, slots=True)
class PatientRelationships:
    """The facts about one patient that relationships are judged on."""

    nhs_number: str
    registered_practice: str | None = None
    nominated_pharmacy: str | None = None
    referral_organisations: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class RelationshipDecision:
    basis: RelationshipBasis
    emergency_reason: EmergencyReason | None = None

    @property
    def raises_privacy_alert(self) -> bool:
        return self.basis is RelationshipBasis.EMERGENCY


def check_relationship(
    principal: Principal,
    patient: PatientRelationships,
    *,
    emergency_reason: EmergencyReason | None = None,
) -> RelationshipDecision:
    """Return the basis of access, or raise :class:`Forbidden` when there is none."""
    if principal.mode is AccessMode.PATIENT:
        if principal.nhs_number == patient.nhs_number:
            return RelationshipDecision(RelationshipBasis.PATIENT_SELF)
        raise Forbidden("Patient cannot perform this action")
    if principal.mode is AccessMode.APPLICATION:
        return RelationshipDecision(RelationshipBasis.APPLICATION)
    ods = principal.ods_code
    if ods is not None:
        if ods == patient.registered_practice:
            return RelationshipDecision(RelationshipBasis.REGISTERED_PRACTICE)
        if ods == patient.nominated_pharmacy:
            return RelationshipDecision(RelationshipBasis.NOMINATED_PHARMACY)
        if ods in patient.referral_organisations:
            return RelationshipDecision(RelationshipBasis.REFERRAL)
    if emergency_reason is not None:
        return RelationshipDecision(RelationshipBasis.EMERGENCY, emergency_reason)
    raise Forbidden("No legitimate relationship with this patient")
