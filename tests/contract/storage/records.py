"""Records the storage tests write: an audit event of the test vocabulary, with a fresh id."""

from __future__ import annotations

import uuid

from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import AuditRecord


def audit_event() -> AuditRecord:
    return audit_record(
        action=AuditAction.TEST_WRITE,
        outcome=AuditOutcome.SUCCESS,
        principal=None,
        context=AuditContext(str(uuid.uuid4()), None),
    )
