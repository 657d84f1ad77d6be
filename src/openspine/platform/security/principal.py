"""Who is calling: an application on its own, or a healthcare worker in one role profile."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from openspine.platform.security.rbac import Permission

__all__ = ["AccessMode", "Principal"]


class AccessMode(StrEnum):
    APPLICATION = "application-restricted"
    HEALTHCARE_WORKER = "healthcare-worker"
    PATIENT = "patient"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request, built from a verified access token."""

    mode: AccessMode
    client_id: str
    permissions: frozenset[Permission]
    token_id: str
    expires_at: int
    ods_code: str | None = None
    user_id: str | None = None
    role_profile_id: str | None = None
    job_role_code: str | None = None
    activities: frozenset[str] = frozenset()
    nhs_number: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def caller_key(self) -> str:
        """The caller for idempotency: one request id from two callers is two requests."""
        if self.mode is AccessMode.HEALTHCARE_WORKER:
            return f"{self.client_id}/{self.user_id}/{self.role_profile_id}"
        if self.mode is AccessMode.PATIENT:
            return f"{self.client_id}/patient"
        return self.client_id

    def audit_identity(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "application": self.client_id,
            "user": self.user_id,
            "role_profile": self.role_profile_id,
            "job_role": self.job_role_code,
            "organisation": self.ods_code,
            "token": self.token_id,
        }
