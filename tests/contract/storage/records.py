"""What the storage tests write: audit events of the test vocabulary, a contended counter."""

from __future__ import annotations

import uuid

from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import (
    AuditRecord,
    PutResource,
    Store,
    VersionConflict,
    WriteSet,
)


def audit_event() -> AuditRecord:
    return audit_record(
        action=AuditAction.TEST_WRITE,
        outcome=AuditOutcome.SUCCESS,
        principal=None,
        context=AuditContext(str(uuid.uuid4()), None),
    )


async def bump_counter(store: Store) -> bool:
    """One audited read-modify-write of the shared ``Thing/counter``: True if it won."""
    current = await store.get("Thing", "counter")
    assert current is not None
    nxt = current.version + 1
    put = PutResource("Thing", "counter", nxt, str(nxt).encode(), current.version)
    try:
        await store.write(WriteSet(puts=[put], audit=[audit_event()]))
    except VersionConflict:
        return False
    return True


async def create_thing(store: Store, name: str) -> None:
    put = PutResource("Thing", name, 1, b"{}", None)
    await store.write(WriteSet(puts=[put], audit=[audit_event()]))
