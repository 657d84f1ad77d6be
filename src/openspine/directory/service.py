"""Directory use cases; also the security layer's :class:`IdentityDirectory`."""

from __future__ import annotations

from openspine.directory.domain import Application, Organisation, RoleProfile
from openspine.directory.storage import DirectoryRecords
from openspine.platform.security.ports import RegisteredApplication, RegisteredRoleProfile
from openspine.platform.security.rbac import Permission
from openspine.platform.storage.ports import Store

__all__ = ["DirectoryService"]


class DirectoryService:
    def __init__(self, store: Store) -> None:
        self._records = DirectoryRecords(store)

    async def organisation(self, ods_code: str) -> Organisation | None:
        return await self._records.get(Organisation, ods_code)

    async def application(self, client_id: str) -> RegisteredApplication | None:
        app = await self._records.get(Application, client_id)
        if app is None:
            return None
        known = {p.value for p in Permission}
        return RegisteredApplication(
            client_id=app.client_id,
            name=app.name,
            jwks=dict(app.jwks),
            ods_code=app.ods_code,
            application_permissions=frozenset(
                Permission(p) for p in app.application_permissions if p in known
            ),
            user_restricted=app.user_restricted,
            active=app.active,
            patient_access=app.patient_access,
        )

    async def role_profile(
        self, user_id: str, role_profile_id: str
    ) -> RegisteredRoleProfile | None:
        profile = await self._records.get(RoleProfile, role_profile_id)
        if profile is None or profile.user_id != user_id:
            return None
        return RegisteredRoleProfile(
            user_id=profile.user_id,
            role_profile_id=profile.role_profile_id,
            ods_code=profile.ods_code,
            job_role_code=profile.job_role_code,
            activities=frozenset(profile.activities),
            active=profile.active,
        )
