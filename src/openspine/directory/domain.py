"""Directory records: organisations, users with role profiles, registered applications."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "AccreditedSystem",
    "Application",
    "MeshMailbox",
    "MeshWorkflow",
    "MessageHandler",
    "Organisation",
    "OrganisationRole",
    "RoleProfile",
    "User",
    "is_job_role_code",
    "is_ods_code",
]

_JOB_ROLE = re.compile(r"^S\d{4,6}:G\d{4,6}:R\d{4,6}$")
_ODS = re.compile(r"^[A-Z0-9]{3,8}$")


def is_job_role_code(value: str) -> bool:
    """A CIS2 job role code ``S…:G…:R…`` (staff group, job group, job role)."""
    return bool(_JOB_ROLE.match(value))


def is_ods_code(value: str) -> bool:
    return bool(_ODS.match(value))


class OrganisationRole(StrEnum):
    """ODS primary role codes."""

    GP_PRACTICE = "RO177"
    PRESCRIBING_COST_CENTRE = "RO76"
    PHARMACY = "RO182"
    NHS_TRUST = "RO197"
    COMMISSIONER = "RO98"


class Organisation(msgspec.Struct, frozen=True, kw_only=True):
    ods_code: str
    name: str
    roles: tuple[OrganisationRole, ...]
    postcode: str
    address_line: str
    town: str
    parent_ods_code: str | None = None


class RoleProfile(msgspec.Struct, frozen=True, kw_only=True):
    role_profile_id: str
    user_id: str
    ods_code: str
    job_role_code: str
    job_role_name: str
    activities: tuple[str, ...]
    active: bool = True
    #: The X.509 certificate (PEM) of the smartcard key this user signs prescriptions with.
    signing_certificate: str | None = None

    @property
    def job_role(self) -> str:
        return self.job_role_code.rsplit(":", 1)[-1]


class User(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    name: str
    role_profile_ids: tuple[str, ...]
    professional_code: str | None = None


class Application(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    name: str
    ods_code: str
    jwks: dict[str, Any]
    application_permissions: tuple[str, ...]
    user_restricted: bool
    active: bool = True
    patient_access: bool = False


class MeshMailbox(msgspec.Struct, frozen=True, kw_only=True):
    """A MESH mailbox; its password is sealed (AES-GCM), never stored in clear (ADR 0010)."""

    mailbox_id: str
    mailbox_name: str
    ods_code: str
    org_code: str
    org_name: str = ""
    billing_entity: str = "England"
    sealed_password: str
    active: bool = True


class MeshWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    """A registered MESH workflow: who may send on it and who may receive it."""

    workflow_id: str
    senders: tuple[str, ...]
    receivers: tuple[str, ...]


class AccreditedSystem(msgspec.Struct, frozen=True, kw_only=True):
    """An Accredited System (AS) record: one system deployed at one organisation (SDS /Device)."""

    asid: str
    ods_code: str
    party_key: str
    manufacturing_ods_code: str
    interactions: tuple[str, ...]
    name: str = ""


class MessageHandler(msgspec.Struct, frozen=True, kw_only=True):
    """A Message Handling System (MHS) record: where and how to send (SDS /Endpoint)."""

    party_key: str
    ods_code: str
    asid: str
    address: str
    fqdn: str
    cpa_id: str
    interactions: tuple[str, ...]
    sync_reply_mode: str = "MSHSignalsOnly"
    retry_interval: str = "PT1M"
    retries: int = 2
    persist_duration: str = "PT5M"
    duplicate_elimination: str = "always"
    ack_requested: str = "always"
    actor: str = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
