"""Mailboxes and workflows in the directory: the sandbox set, and the demo population's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openspine.directory.domain import MeshMailbox, MeshWorkflow
from openspine.directory.storage import DirectoryRecords
from openspine.mesh.passwords import PasswordSeal
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import AlreadyExists, Store, VersionConflict, WriteSet

__all__ = [
    "SANDBOX_MAILBOXES",
    "SANDBOX_SHARED_KEY",
    "SANDBOX_WORKFLOWS",
    "MailboxSpec",
    "register",
]

#: The shared key mesh-client's sandbox suite uses (MESH_CLIENT_SHARED_KEY), as NHS's mesh-sandbox.
SANDBOX_SHARED_KEY = "TestKey"


@dataclass(frozen=True, slots=True)
class MailboxSpec:
    mailbox_id: str
    mailbox_name: str
    ods_code: str
    password: str
    billing_entity: str = "England"
    org_name: str = ""


#: What mesh-client's sandbox suite expects (its tests/mailboxes.jsonl and workflows.jsonl).
SANDBOX_MAILBOXES: tuple[MailboxSpec, ...] = (
    MailboxSpec("ALICE", "TESTMB1", "X26", "password", "England"),
    MailboxSpec("BOB", "TESTMB2", "X26", "password", "Wales"),
    MailboxSpec("BARRY", "TESTMB3", "X27", "password", "England"),
)
SANDBOX_WORKFLOWS: tuple[MeshWorkflow, ...] = (
    MeshWorkflow(workflow_id="RESTRICTED_WORKFLOW", senders=("ALICE",), receivers=("BOB",)),
    MeshWorkflow(workflow_id="ANOTHER_WORKFLOW", senders=("BOB",), receivers=("BARRY", "ALICE")),
)


async def register(
    store: Store,
    seal: PasswordSeal,
    mailboxes: Sequence[MailboxSpec],
    workflows: Sequence[MeshWorkflow],
    detail: str,
) -> None:
    """Create or replace these mailboxes and workflows (passwords sealed), audited."""
    records = [
        MeshMailbox(
            mailbox_id=m.mailbox_id,
            mailbox_name=m.mailbox_name,
            ods_code=m.ods_code,
            org_code=m.ods_code,
            org_name=m.org_name,
            billing_entity=m.billing_entity,
            sealed_password=seal.seal(m.mailbox_id, m.password),
        )
        for m in mailboxes
    ]
    directory = DirectoryRecords(store)
    all_records = [*records, *workflows]
    for attempt in range(3):
        puts = DirectoryRecords.upserts(all_records, await directory.versions(all_records))
        audit = audit_record(
            action=AuditAction.DIRECTORY_MESH_REGISTER,
            outcome=AuditOutcome.SUCCESS,
            principal=None,
            context=AuditContext(None, None),
            detail=detail,
        )
        try:
            await store.write(WriteSet(puts=puts, audit=[audit]))
            return
        except (VersionConflict, AlreadyExists):
            # another process (a second worker starting) registered them at the same moment
            if attempt == 2:
                raise
