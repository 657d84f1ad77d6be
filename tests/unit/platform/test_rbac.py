from __future__ import annotations

from openspine.platform.security.rbac import (
    BASELINE_POLICY,
    Permission,
    expand_activities,
    permissions_for_activities,
)


def test_b0825_includes_b0820() -> None:
    assert "B0820" in expand_activities(["B0825"])


def test_inclusions_are_transitive() -> None:
    # Dispense (B0058) includes Release (B0420), which includes View Demographics (B0820).
    assert {"B0058", "B0420", "B0820"} <= expand_activities(["B0058"])


def test_permissions_follow_included_activities() -> None:
    assert Permission.PDS_PATIENT_READ in permissions_for_activities(["B0825"])
    assert Permission.PDS_PATIENT_UPDATE not in permissions_for_activities(["B0820"])


def test_system_support_cannot_see_patients() -> None:
    assert Permission.PDS_PATIENT_READ not in permissions_for_activities(BASELINE_POLICY["R8015"])


def test_prescriber_and_dispenser() -> None:
    assert Permission.EPS_PRESCRIPTION_PRESCRIBE in permissions_for_activities(
        BASELINE_POLICY["R8000"]
    )
    assert Permission.EPS_PRESCRIPTION_DISPENSE in permissions_for_activities(
        BASELINE_POLICY["R8003"]
    )
