"""What the security layer needs from the directory (implemented by ``openspine.directory``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from openspine.platform.security.rbac import Permission

__all__ = ["IdentityDirectory", "RegisteredApplication", "RegisteredRoleProfile"]


@dataclass(frozen=True, slots=True)
class RegisteredApplication:
    client_id: str
    name: str
    jwks: dict[str, Any]
    ods_code: str
    application_permissions: frozenset[Permission]
    user_restricted: bool
    active: bool = True
    patient_access: bool = False


@dataclass(frozen=True, slots=True)
class RegisteredRoleProfile:
    user_id: str
    role_profile_id: str
    ods_code: str
    job_role_code: str
    activities: frozenset[str]
    active: bool = True


class IdentityDirectory(Protocol):
    async def application(self, client_id: str) -> RegisteredApplication | None: ...

    async def role_profile(
        self, user_id: str, role_profile_id: str
    ) -> RegisteredRoleProfile | None: ...
