from __future__ import annotations

import pytest

from openspine.platform.errors import Forbidden
from openspine.platform.security.principal import AccessMode, Principal
from openspine.platform.security.relationships import (
    EmergencyReason,
    PatientRelationships,
    RelationshipBasis,
    check_relationship,
)

PATIENT = PatientRelationships(
    "9000000009",
    registered_practice="A81001",
    nominated_pharmacy="FA100",
    referral_organisations=("RA1",),
)


def worker(ods: str) -> Principal:
    return Principal(
        mode=AccessMode.HEALTHCARE_WORKER,
        client_id="app",
        permissions=frozenset(),
        token_id="t",
        expires_at=0,
        ods_code=ods,
        user_id="u",
        role_profile_id="r",
    )


@pytest.mark.parametrize(
    ("ods", "basis"),
    [
        ("A81001", RelationshipBasis.REGISTERED_PRACTICE),
        ("FA100", RelationshipBasis.NOMINATED_PHARMACY),
        ("RA1", RelationshipBasis.REFERRAL),
    ],
)
def test_relationships(ods: str, basis: RelationshipBasis) -> None:
    assert check_relationship(worker(ods), PATIENT).basis is basis


def test_no_relationship_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        check_relationship(worker("ZZZ99"), PATIENT)


def test_emergency_claim_is_allowed_and_raises_an_alert() -> None:
    decision = check_relationship(
        worker("ZZZ99"), PATIENT, emergency_reason=EmergencyReason.EMERGENCY_CARE
    )
    assert decision.basis is RelationshipBasis.EMERGENCY
    assert decision.raises_privacy_alert


def test_patient_sees_only_their_own_record() -> None:
    me = Principal(
        mode=AccessMode.PATIENT,
        client_id="nhs-app",
        permissions=frozenset(),
        token_id="t",
        expires_at=0,
        nhs_number="9000000009",
    )
    assert check_relationship(me, PATIENT).basis is RelationshipBasis.PATIENT_SELF
    with pytest.raises(Forbidden):
        check_relationship(me, PatientRelationships("9000000017"))
