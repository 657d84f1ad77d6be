"""National role-based access control: activities, their inclusions, and named permissions.

Job roles (``R`` codes) carry activities (``B`` codes) through the baseline policy; an activity
may include others (Amend Patient Demographics B0825 includes View Patient Demographics B0820),
resolved transitively. Routes declare a :class:`Permission`; :data:`PERMISSION_ACTIVITIES` says
which activities grant it to a healthcare worker. Application-restricted callers hold the
permissions registered for their application in the directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_INCLUDES",
    "BASELINE_POLICY",
    "PERMISSION_ACTIVITIES",
    "Permission",
    "expand_activities",
    "permissions_for_activities",
]


class Permission(StrEnum):
    """What a route needs: ``<service>:<resource>:<action>``."""

    PDS_PATIENT_READ = "pds:patient:read"
    PDS_PATIENT_SEARCH = "pds:patient:search"
    PDS_PATIENT_UPDATE = "pds:patient:update"
    PDS_PATIENT_CREATE = "pds:patient:create"
    EPS_PRESCRIPTION_PRESCRIBE = "eps:prescription:prescribe"
    EPS_PRESCRIPTION_DISPENSE = "eps:prescription:dispense"
    EPS_PRESCRIPTION_READ = "eps:prescription:read"
    SCR_RECORD_READ = "scr:record:read"
    AUDIT_PRIVACY_ALERT_READ = "audit:privacy-alert:read"
    PLATFORM_OPERATE = "platform:system:operate"
    DIRECTORY_READ = "directory:record:read"


#: The activities OpenSpine knows, with their national names.
ACTIVITIES: Mapping[str, str] = {
    "B0820": "View Patient Demographics",
    "B0825": "Amend Patient Demographics",
    "B0570": "Perform Prescription Preparation",
    "B0068": "Authorise Prescriptions",
    "B0058": "Dispense Prescriptions",
    "B0420": "Release Prescriptions",
    "B0370": "View Clinical Summary",
    "B0018": "Receive Privacy Officer Alerts",
    "B0016": "Manage Registration Authority",
    "B1535": "Perform System Support",
}

#: Activity → activities it includes (directly).
ACTIVITY_INCLUDES: Mapping[str, frozenset[str]] = {
    "B0825": frozenset({"B0820"}),
    "B0068": frozenset({"B0570"}),
    "B0058": frozenset({"B0420"}),
    "B0420": frozenset({"B0820"}),
    "B0570": frozenset({"B0820"}),
    "B0370": frozenset({"B0820"}),
}

#: Baseline policy: job role code (the ``R`` part) → activities.
BASELINE_POLICY: Mapping[str, frozenset[str]] = {
    "R8000": frozenset({"B0825", "B0068", "B0370"}),  # Clinical Practitioner
    "R8001": frozenset({"B0825", "B0370"}),  # Nurse
    "R8003": frozenset({"B0820", "B0058"}),  # Pharmacist
    "R8008": frozenset({"B0825"}),  # Admin / Clinical Support Access Role
    "R5250": frozenset({"B0018", "B0820"}),  # Privacy Officer
    "R8015": frozenset({"B1535"}),  # System Support
}

PERMISSION_ACTIVITIES: Mapping[Permission, frozenset[str]] = {
    Permission.PDS_PATIENT_READ: frozenset({"B0820"}),
    Permission.PDS_PATIENT_SEARCH: frozenset({"B0820"}),
    Permission.PDS_PATIENT_UPDATE: frozenset({"B0825"}),
    Permission.PDS_PATIENT_CREATE: frozenset({"B0825"}),
    Permission.EPS_PRESCRIPTION_PRESCRIBE: frozenset({"B0570"}),
    Permission.EPS_PRESCRIPTION_DISPENSE: frozenset({"B0058"}),
    Permission.EPS_PRESCRIPTION_READ: frozenset({"B0420", "B0570"}),
    Permission.SCR_RECORD_READ: frozenset({"B0370"}),
    Permission.AUDIT_PRIVACY_ALERT_READ: frozenset({"B0018"}),
    Permission.PLATFORM_OPERATE: frozenset({"B1535"}),
    # The directory holds no patient data: any national activity lets a user look it up.
    Permission.DIRECTORY_READ: frozenset(ACTIVITIES),
}


def expand_activities(activities: Iterable[str]) -> frozenset[str]:
    """Every activity held, following inclusions transitively (cycles are harmless)."""
    return _expand(frozenset(activities))


@lru_cache(maxsize=1024)
def _expand(activities: frozenset[str]) -> frozenset[str]:
    seen: set[str] = set()
    pending = list(activities)
    while pending:
        activity = pending.pop()
        if activity in seen:
            continue
        seen.add(activity)
        pending.extend(ACTIVITY_INCLUDES.get(activity, ()))
    return frozenset(seen)


def permissions_for_activities(activities: Iterable[str]) -> frozenset[Permission]:
    held = expand_activities(activities)
    return frozenset(p for p, needs in PERMISSION_ACTIVITIES.items() if held & needs)
