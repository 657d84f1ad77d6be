"""Audit events: who did what to which patients, when, why and with what outcome.

Actions come from :class:`AuditAction`; the payload is canonical JSON (sorted keys), so that its
hash is stable across processes and stores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from random import getrandbits
from typing import TYPE_CHECKING

import orjson

from openspine.platform.storage.ports import AuditRecord

if TYPE_CHECKING:
    from openspine.platform.security.principal import Principal

__all__ = ["AuditAction", "AuditContext", "AuditOutcome", "audit_record"]


class AuditAction(StrEnum):
    """The controlled vocabulary of audited actions: ``<service>.<resource>.<action>``."""

    PDS_PATIENT_READ = "pds.patient.read"
    PDS_PATIENT_SEARCH = "pds.patient.search"
    PDS_PATIENT_UPDATE = "pds.patient.update"
    PDS_PATIENT_CREATE = "pds.patient.create"
    PDS_PATIENT_MERGE = "pds.patient.merge"
    PDS_PATIENT_INVALIDATE = "pds.patient.invalidate"
    PDS_RELATED_PERSON_READ = "pds.related-person.read"
    PDS_POPULATION_LOAD = "pds.population.load"
    DIRECTORY_MESH_REGISTER = "directory.mesh.register"
    EPS_PRESCRIPTION_PREPARE = "eps.prescription.prepare"
    EPS_PRESCRIPTION_CREATE = "eps.prescription.create"
    EPS_PRESCRIPTION_CANCEL = "eps.prescription.cancel"
    EPS_PRESCRIPTION_RELEASE = "eps.prescription.release"
    EPS_PRESCRIPTION_RETURN = "eps.prescription.return"
    EPS_PRESCRIPTION_WITHDRAW = "eps.prescription.withdraw"
    EPS_PRESCRIPTION_DISPENSE = "eps.prescription.dispense"
    EPS_PRESCRIPTION_TRACK = "eps.prescription.track"
    EPS_PRESCRIPTION_CLAIM = "eps.prescription.claim"
    EPS_PRESCRIPTION_EXPIRE = "eps.prescription.expire"
    EPS_PRESCRIPTION_ACTIVATE = "eps.prescription.activate"
    EPS_SIGNATURE_VERIFY = "eps.signature.verify"
    MESH_MESSAGE_SEND = "mesh.message.send"
    MESH_MESSAGE_DOWNLOAD = "mesh.message.download"
    MESH_MESSAGE_ACKNOWLEDGE = "mesh.message.acknowledge"
    MESH_MESSAGE_EXPIRE = "mesh.message.expire"
    MESH_MESSAGE_PURGE = "mesh.message.purge"
    MESH_SANDBOX_RESET = "mesh.sandbox.reset"
    SECURITY_TOKEN_ISSUE = "security.token.issue"  # noqa: S105 - an action name, not a secret
    SECURITY_EMERGENCY_ACCESS = "security.emergency-access.claim"
    TEST_WRITE = "platform.test.write"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Where a request came from: its ids, as the request middleware saw them."""

    request_id: str | None
    correlation_id: str | None


#: The service part of each action's code (``pds`` for ``pds.patient.read``).
_SERVICE: dict[AuditAction, str] = {action: action.value.split(".", 1)[0] for action in AuditAction}


def uuid7(at: datetime) -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Audit event ids are stored under a unique index. Random (version 4) ids landed on a random
    leaf of it with every insert, so each group commit wrote one index page per event to the
    WAL; ids that follow the clock all land on its last page (ADR 0015). Python 3.14's
    ``uuid.uuid7`` does the same; this is for 3.11.

    The random bits make ids unique, not secret (the chain, not the id, makes the trail
    tamper-evident), so they come from ``random``, not from a system call per event (ADR 0018).
    The module's generator is seeded from the system again in every forked process (``random``
    registers that itself), so two workers do not draw the same bits.
    """
    return _uuid7(int(at.timestamp() * 1000))


def _uuid7(millis: int) -> str:
    rand = getrandbits(74)
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64  # rand_a: 12 bits
        | 0b10 << 62  # the RFC 4122/9562 variant
        | rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: The last whole second :func:`utc_text` formatted, and its text: one tuple, swapped whole, so
#: that a thread never sees one second's number with another's text.
_last_second: tuple[int, str] = (-1, "")


def utc_text(micros: int) -> str:
    """``datetime.isoformat(timespec="microseconds")`` of a UTC time given in Unix microseconds.

    Every audit event carries one. The date and time of day change once a second, so they are
    formatted once a second; only the microseconds are formatted per event.
    """
    global _last_second
    seconds, fraction = divmod(micros, 1_000_000)
    last, text = _last_second
    if seconds != last:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second = (seconds, text)
    return f"{text}.{fraction:06d}+00:00"


def audit_record(
    *,
    action: AuditAction,
    outcome: AuditOutcome,
    principal: Principal | None,
    context: AuditContext,
    patients: Sequence[str] = (),
    resources: Sequence[str] = (),
    detail: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    if now is None:
        micros = time.time_ns() // 1000
        recorded = utc_text(micros)
        event_id = _uuid7(micros // 1000)
    else:
        recorded = now.isoformat(timespec="microseconds")
        event_id = uuid7(now)
    payload: dict[str, object] = {
        "id": event_id,
        "recorded": recorded,
        "action": action.value,
        "service": _SERVICE[action],
        "outcome": outcome.value,
        "who": principal.audit_identity() if principal is not None else None,
        "patients": list(patients),
        "resources": list(resources),
        "request_id": context.request_id,
        "correlation_id": context.correlation_id,
    }
    if detail is not None:
        payload["detail"] = detail
    if reason is not None:
        payload["reason"] = reason
    return AuditRecord(
        event_id=event_id,
        recorded_at=recorded,
        payload=orjson.dumps(payload, option=orjson.OPT_SORT_KEYS),
    )
