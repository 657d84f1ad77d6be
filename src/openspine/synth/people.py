"""Demo users (one per kind of Spine user) and demo applications."""

from __future__ import annotations

from dataclasses import dataclass

from openspine.directory.domain import Organisation, OrganisationRole, RoleProfile, User
from openspine.platform.security.rbac import BASELINE_POLICY, Permission

__all__ = ["DEMO_APPS", "DemoApp", "demo_users"]


@dataclass(frozen=True, slots=True)
class DemoApp:
    client_id: str
    name: str
    user_restricted: bool
    application_permissions: tuple[Permission, ...]
    patient_access: bool = False


DEMO_APPS: tuple[DemoApp, ...] = (
    DemoApp("openspine-demo-clinical", "OpenSpine demo clinical system", True, ()),
    DemoApp(
        "openspine-demo-backend",
        "OpenSpine demo back-end integration",
        False,
        (Permission.PDS_PATIENT_READ, Permission.PDS_PATIENT_SEARCH, Permission.DIRECTORY_READ),
    ),
    DemoApp(
        "openspine-demo-patient",
        "OpenSpine demo patient-facing app (NHS login)",
        False,
        (),
        patient_access=True,
    ),
)

# (user id, name, role profile id, job role code, job role name, organisation role)
_USERS = (
    (
        "555000000001",
        "Dr Amelia Carter",
        "555000000101",
        "S8000:G8000:R8000",
        "Clinical Practitioner Access Role",
        OrganisationRole.GP_PRACTICE,
    ),
    (
        "555000000002",
        "Benjamin Okafor",
        "555000000102",
        "S8000:G8001:R8001",
        "Nurse Access Role",
        OrganisationRole.GP_PRACTICE,
    ),
    (
        "555000000003",
        "Priya Shah",
        "555000000103",
        "S8003:G8003:R8003",
        "Pharmacist",
        OrganisationRole.PHARMACY,
    ),
    (
        "555000000004",
        "Gemma Hughes",
        "555000000104",
        "S8002:G8008:R8008",
        "Admin/Clinical Support Access Role",
        OrganisationRole.GP_PRACTICE,
    ),
    (
        "555000000005",
        "Robert Ellis",
        "555000000105",
        "S8002:G8005:R5250",
        "Privacy Officer",
        OrganisationRole.NHS_TRUST,
    ),
    (
        "555000000006",
        "Sam Taylor",
        "555000000106",
        "S8002:G8015:R8015",
        "System Support Access Role",
        OrganisationRole.NHS_TRUST,
    ),
)


def demo_users(orgs: list[Organisation]) -> tuple[list[User], list[RoleProfile]]:
    """The demo users, each with one role profile at the first organisation of its kind."""
    users, profiles = [], []
    for user_id, name, rp_id, job_role_code, job_role_name, org_role in _USERS:
        org = next(o for o in orgs if org_role in o.roles)
        job_role = job_role_code.rsplit(":", 1)[-1]
        profiles.append(
            RoleProfile(
                role_profile_id=rp_id,
                user_id=user_id,
                ods_code=org.ods_code,
                job_role_code=job_role_code,
                job_role_name=job_role_name,
                activities=tuple(sorted(BASELINE_POLICY[job_role])),
            )
        )
        users.append(User(user_id=user_id, name=name, role_profile_ids=(rp_id,)))
    return users, profiles
