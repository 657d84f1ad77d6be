"""MESH use cases: authenticate, send (chunked), list, download, acknowledge, track, look up,
and the scheduled expiry (non-delivery reports) and retention purge.

Message records are versioned resources (type ``MeshMessage``) whose search keys make the
inbox, the workflow filter, local-id tracking and the expiry and purge queues range scans of the
store's ordered index (ADR 0009). Chunk bytes live in the blob store and are durable before the
record naming them commits; the record commits before the client is answered.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import anyio
import msgspec

from openspine.directory.domain import MeshMailbox, MeshWorkflow
from openspine.directory.storage import CachedRecords, DirectoryRecords
from openspine.mesh.auth import TokenRejected, parse_token, verify_token
from openspine.mesh.blobs import INLINE, BlobStore, BlobTooLarge, pack_of
from openspine.mesh.domain import (
    MAX_ID_HEADER,
    MAX_SUBJECT,
    MESSAGE,
    MeshMessage,
    MessageStatus,
    MessageType,
    new_message_id,
    parse_chunk_range,
    yes,
)
from openspine.mesh.passwords import PasswordSeal
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import (
    AlreadyExists,
    ConsumeNonce,
    IndexKey,
    NonceReplayed,
    OutboxMessage,
    PutResource,
    Store,
    StoredResource,
    VersionConflict,
    WriteSet,
)

__all__ = [
    "Caller",
    "MeshError",
    "MeshForbidden",
    "MeshNotFound",
    "MeshService",
    "MeshSettings",
]

_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(MeshMessage)
MAX_RETRIES: Final = 8
#: How long a process keeps a mailbox or workflow it has read (ADR 0022).
DIRECTORY_SECONDS: Final = 5.0
INBOX_SCAN_LIMIT: Final = 100_000
#: The inbox listing's ``approx_inbox_count`` counts this far at most (it is an indication).
APPROX_COUNT_LIMIT: Final = 5_000
REPORT_UNDELIVERED: Final = ("SEND", "14", "Message not collected by recipient after {0} days")


class MeshError(Exception):
    """A MESH error answer: HTTP status and the DTS event, code and description."""

    def __init__(
        self,
        status: int,
        event: str,
        code: str,
        description: str,
        message_id: str | None = None,
    ) -> None:
        super().__init__(description)
        self.status, self.event, self.code = status, event, code
        self.description, self.message_id = description, message_id


class MeshForbidden(MeshError):
    def __init__(self, description: str = "Authentication failed") -> None:
        super().__init__(403, "AUTH", "403", description)


class MeshNotFound(MeshError):
    def __init__(self, message_id: str | None = None) -> None:
        super().__init__(404, "RECEIVE", "20", "Message does not exist", message_id)


class MeshGone(MeshError):
    def __init__(self, message_id: str) -> None:
        super().__init__(
            410, "RECEIVE", "20", "Message no longer available for download", message_id
        )


@dataclass(frozen=True, slots=True)
class MeshSettings:
    shared_key: bytes
    sandbox: bool = False
    inbox_expiry: timedelta = timedelta(days=5)
    retention: timedelta = timedelta(days=30)
    max_chunk_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated mailbox and the single-use token it came with."""

    mailbox: MeshMailbox
    nonce: ConsumeNonce


@dataclass(frozen=True, slots=True)
class InboxPage:
    message_ids: list[str]
    next_token: str | None
    approx_count: int


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _keys(m: MeshMessage) -> tuple[IndexKey, ...]:
    """The message's search keys. Every message not yet purged is in the inbox (``mbin``) or
    waits for its purge (``mbpurge``): the sandbox's reset finds them all there."""
    if m.status is MessageStatus.PURGED:
        return ()
    keys: list[IndexKey] = []
    if m.status is MessageStatus.ACCEPTED and m.accepted_at and m.expires_at:
        keys.append(("mbin", f"{m.recipient}|{m.accepted_at}|{m.message_id}"))
        keys.append(("mbwf", f"{m.recipient}|{m.workflow_id}|{m.accepted_at}|{m.message_id}"))
        keys.append(("mbexp", f"{m.expires_at}|{m.message_id}"))
    elif m.purge_at:
        keys.append(("mbpurge", f"{m.purge_at}|{m.message_id}"))
    if m.local_id:
        keys.append(("mblocal", f"{m.sender}|{m.local_id}|{m.message_id}"))
    for reference in sorted({c for c in m.chunks if c}):
        pack = pack_of(reference)
        if pack is None:  # a file of its own, perhaps shared with other messages' chunks
            keys.append(("mbblob", f"{reference}|{m.message_id}"))
        else:
            keys.append(("mbpack", f"{pack}|{m.message_id}"))
    return tuple(dict.fromkeys(keys))  # two chunks in one pack: one key


def _put(m: MeshMessage, version: int, expected: int | None) -> PutResource:
    # No API reads a message's earlier versions, and the audit trail holds every change.
    return PutResource(
        MESSAGE,
        m.message_id,
        version,
        _ENCODE.encode(m),
        expected,
        search_keys=_keys(m),
        keep_history=False,
    )


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _untoken(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, or not ASCII at all
        raise MeshError(400, "RECEIVE", "400", "continue_from is not valid") from None


class MeshService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        seal: PasswordSeal,
        settings: MeshSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._directory = CachedRecords(DirectoryRecords(store), DIRECTORY_SECONDS)
        self._blobs = blobs
        self.seal = seal
        self.settings = settings
        self.clock = clock

    # -- authentication ------------------------------------------------------------------------

    def close(self) -> None:
        """Close this process's pack of small bodies."""
        self._blobs.close()

    async def authenticate(
        self, path_mailbox: str | None, header: str | None, *, consume: bool = True
    ) -> Caller:
        """The mailbox of a valid NHSMESH token (and of the path, where there is one).

        With ``consume`` the token is recorded as used before this returns; without it the
        caller must commit ``Caller.nonce`` with its own write (one commit instead of two).
        """
        try:
            token = parse_token(header)
        except TokenRejected:
            raise MeshForbidden() from None
        if path_mailbox is not None and token.mailbox_id.upper() != path_mailbox.upper():
            raise MeshForbidden("Mailbox id does not match token")
        mailbox = await self._directory.get(MeshMailbox, token.mailbox_id.upper())
        if mailbox is None or not mailbox.active:
            raise MeshForbidden()
        try:
            password = self.seal.open(mailbox.mailbox_id, mailbox.sealed_password)
            verify_token(
                token, shared_key=self.settings.shared_key, password=password, now=self.clock()
            )
        except (TokenRejected, ValueError):
            raise MeshForbidden() from None
        expires = int((token.issued_at + timedelta(hours=2, minutes=5)).timestamp())
        nonce = ConsumeNonce(
            f"mesh:{mailbox.mailbox_id}", f"{token.nonce}:{token.nonce_count}", expires
        )
        if consume:
            await self.consume(nonce)
        return Caller(mailbox, nonce)

    async def consume(self, nonce: ConsumeNonce) -> None:
        """Record a token as used, on its own (writes carry it in their own commit instead)."""
        try:
            await self._store.write(WriteSet(nonces=[nonce]))
        except NonceReplayed:
            raise MeshForbidden("Error Duplicated Authentication Token") from None

    # -- records -------------------------------------------------------------------------------

    async def _get(self, message_id: str) -> tuple[MeshMessage, int] | None:
        if len(message_id) > 100:
            return None
        stored: StoredResource | None = await self._store.get(MESSAGE, message_id)
        if stored is None:
            return None
        return _DECODE.decode(stored.body), stored.version

    def _audit(
        self, action: AuditAction, mailbox: str, message_id: str, context: AuditContext
    ) -> WriteSet:
        return WriteSet(
            audit=[
                audit_record(
                    action=action,
                    outcome=AuditOutcome.SUCCESS,
                    principal=None,
                    context=context,
                    resources=[f"{MESSAGE}/{message_id}"],
                    detail=f"mailbox {mailbox}",
                )
            ]
        )

    async def _update(
        self,
        message_id: str,
        change: Callable[[MeshMessage], WriteSet | None],
        nonce: ConsumeNonce | None = None,
    ) -> MeshMessage:
        """Re-read and re-apply ``change`` until its conditional write wins (optimistic).

        ``nonce`` (the caller's token) commits with the change, or on its own if nothing changes.
        """
        for _ in range(MAX_RETRIES):
            found = await self._get(message_id)
            if found is None:
                raise MeshNotFound(message_id)
            message, version = found
            extra = change(message)
            if extra is None:
                if nonce is not None:
                    await self.consume(nonce)
                return message
            extra.puts.append(_put(message, version + 1, version))
            if nonce is not None:
                extra.nonces.append(nonce)
            try:
                await self._store.write(extra)
            except VersionConflict:
                continue
            except NonceReplayed:
                raise MeshForbidden("Error Duplicated Authentication Token") from None
            return message
        raise MeshError(503, "SEND", "503", "Busy: retry the request", message_id)

    # -- send ----------------------------------------------------------------------------------

    async def send(
        self,
        sender: MeshMailbox,
        headers: Mapping[str, str],
        body: AsyncIterator[bytes],
        context: AuditContext,
        nonce: ConsumeNonce | None = None,
    ) -> MeshMessage:
        recipient_id = (headers.get("mex-to") or "").strip().upper()
        if not recipient_id:
            raise MeshError(400, "SEND", "08", "TO_DTS missing")
        encoding = (headers.get("content-encoding") or "").strip().lower()
        if encoding not in ("", "gzip"):
            raise MeshError(
                417, "SEND", "UnsupportedContentEncoding", "Unsupported content encoding"
            )
        chunk_range = parse_chunk_range(headers.get("mex-chunk-range"), 1)
        if chunk_range is None:
            raise MeshError(
                417,
                "SEND",
                "InvalidHeaderChunks",
                "Invalid chunk values sent in mex-Chunk-Range header",
            )
        workflow = (headers.get("mex-workflowid") or "").strip()
        for name, limit in (
            ("mex-subject", MAX_SUBJECT),
            ("mex-localid", MAX_ID_HEADER),
            ("mex-filename", MAX_ID_HEADER),
            ("mex-workflowid", MAX_ID_HEADER),
        ):
            if len(headers.get(name) or "") > limit:
                raise MeshError(400, "SEND", "400", f"{name} is longer than {limit} characters")
        recipient = await self._directory.get(MeshMailbox, recipient_id)
        if recipient is None or not recipient.active:
            raise MeshError(417, "SEND", "12", "Unregistered to address")
        await self._check_workflow(workflow, sender.mailbox_id, recipient.mailbox_id)
        try:
            digest, size = await self._blobs.put(body, self.settings.max_chunk_bytes)
        except BlobTooLarge:
            raise MeshError(413, "SEND", "413", "Chunk is larger than 100 MB") from None
        if size == 0:
            raise MeshError(417, "SEND", "02", "Data file is missing or inaccessible.")
        now = self.clock()
        total = chunk_range[1]
        chunks: list[str | None] = [digest] + [None] * (total - 1)
        sizes = [size] + [0] * (total - 1)
        content_type = (
            headers.get("mex-content-type")
            or headers.get("content-type")
            or ("application/octet-stream")
        )
        stamp = _iso(now)  # one text for the instant, however many fields carry it
        for _ in range(MAX_RETRIES):
            message = MeshMessage(
                message_id=new_message_id(now),
                sender=sender.mailbox_id,
                recipient=recipient.mailbox_id,
                workflow_id=workflow,
                status=MessageStatus.UPLOADING,
                total_chunks=total,
                chunks=chunks,
                chunk_sizes=sizes,
                content_type=content_type.split(";")[0].strip(),
                content_encoding=encoding,
                subject=headers.get("mex-subject"),
                file_name=headers.get("mex-filename"),
                local_id=headers.get("mex-localid"),
                partner_id=headers.get("mex-partnerid"),
                checksum=headers.get("mex-content-checksum"),
                encrypted=yes(headers.get("mex-content-encrypted")),
                compressed=yes(headers.get("mex-content-compressed")),
                created_at=stamp,
                status_at=stamp,
                purge_at=_iso(now + self.settings.retention),
            )
            if message.file_name is None:
                message.file_name = f"{message.message_id}.dat"
            if total == 1:
                self._accept(message, now)
            writes = self._audit(
                AuditAction.MESH_MESSAGE_SEND, sender.mailbox_id, message.message_id, context
            )
            writes.puts.append(_put(message, 1, None))
            writes.sync_dirs = self._blobs.sync_dirs  # the body is durable when this commits
            if message.status is MessageStatus.ACCEPTED:
                writes.outbox.append(self._event(message))
            if nonce is not None:
                writes.nonces.append(nonce)
            try:
                await self._store.write(writes)
            except AlreadyExists:
                continue  # the same millisecond and random suffix: draw another id
            except NonceReplayed:
                raise MeshForbidden("Error Duplicated Authentication Token") from None
            return message
        raise MeshError(503, "SEND", "503", "Busy: retry the request")

    async def _check_workflow(self, workflow_id: str, sender: str, recipient: str) -> None:
        registered = await self._directory.get(MeshWorkflow, workflow_id) if workflow_id else None
        if registered is None:
            if self.settings.sandbox:
                return  # the sandbox, like NHS's mesh-sandbox, accepts any workflow
            raise MeshError(403, "SEND", "17", "Workflow ID not registered for mailbox")
        if sender not in registered.senders or recipient not in registered.receivers:
            raise MeshError(403, "SEND", "17", "Workflow ID not registered for mailbox")

    def _accept(self, message: MeshMessage, now: datetime) -> None:
        message.status = MessageStatus.ACCEPTED
        message.accepted_at = message.status_at = _iso(now)
        message.expires_at = _iso(now + self.settings.inbox_expiry)
        message.purge_at = None

    @staticmethod
    def _event(message: MeshMessage) -> OutboxMessage:
        payload = {
            "messageId": message.message_id,
            "recipient": message.recipient,
            "workflowId": message.workflow_id,
            "status": message.status.value,
        }
        return OutboxMessage(
            "mesh.message." + message.status.value, message.recipient, _ENCODE.encode(payload)
        )

    async def upload_chunk(
        self,
        sender: MeshMailbox,
        message_id: str,
        chunk_number: int,
        headers: Mapping[str, str],
        body: AsyncIterator[bytes],
        context: AuditContext,
        nonce: ConsumeNonce | None = None,
    ) -> MeshMessage:
        found = await self._get(message_id)
        if found is None:
            raise MeshNotFound(message_id)
        message, _ = found
        if message.sender != sender.mailbox_id:
            raise MeshForbidden()
        chunk_range = parse_chunk_range(headers.get("mex-chunk-range"), chunk_number)
        if chunk_range is None or chunk_range[1] != message.total_chunks:
            raise MeshError(
                417,
                "SEND",
                "InvalidHeaderChunks",
                "Invalid chunk values sent in mex-Chunk-Range header",
                message_id,
            )
        if message.status is not MessageStatus.UPLOADING:
            raise MeshError(423, "SEND", "423", "Message has been finalised", message_id)
        if (headers.get("content-encoding") or "").strip().lower() != message.content_encoding:
            raise MeshError(417, "SEND", "417", "cannot change content encoding", message_id)
        try:
            digest, size = await self._blobs.put(body, self.settings.max_chunk_bytes)
        except BlobTooLarge:
            raise MeshError(413, "SEND", "413", "Chunk is larger than 100 MB", message_id) from None

        def store_chunk(m: MeshMessage) -> WriteSet | None:
            if m.status is not MessageStatus.UPLOADING:
                raise MeshError(423, "SEND", "423", "Message has been finalised", message_id)
            m.chunks[chunk_number - 1] = digest
            m.chunk_sizes[chunk_number - 1] = size
            writes = WriteSet()
            if m.complete:
                self._accept(m, self.clock())
                writes = self._audit(AuditAction.MESH_MESSAGE_SEND, m.sender, m.message_id, context)
                writes.outbox.append(self._event(m))
            writes.sync_dirs = self._blobs.sync_dirs  # the chunk is durable when this commits
            return writes

        return await self._update(message_id, store_chunk, nonce)

    # -- inbox ---------------------------------------------------------------------------------

    async def inbox(
        self,
        mailbox: MeshMailbox,
        *,
        max_results: int,
        continue_from: str | None,
        workflow_filter: str | None,
    ) -> InboxPage:
        if workflow_filter:
            param, prefix = "mbwf", f"{mailbox.mailbox_id}|{workflow_filter}|"
        else:
            param, prefix = "mbin", f"{mailbox.mailbox_id}|"
        low, after = prefix, None
        if continue_from:
            after = _untoken(continue_from)
            if not after.startswith(prefix):
                raise MeshError(400, "RECEIVE", "400", "continue_from is not valid")
            low = after
        rows = await self._store.scan_index(MESSAGE, param, low, prefix + "~", max_results + 2)
        rows = [r for r in rows if r[1] != after][: max_results + 1]  # resume after the last one
        page = rows[:max_results]
        more = len(rows) > max_results
        count = await self.count(mailbox, limit=APPROX_COUNT_LIMIT)
        return InboxPage(
            [value.rsplit("|", 1)[1] for _, value in page],
            _token(page[-1][1]) if more and page else None,
            count,
        )

    async def count(self, mailbox: MeshMailbox, limit: int = INBOX_SCAN_LIMIT) -> int:
        prefix = f"{mailbox.mailbox_id}|"
        rows = await self._store.scan_index(MESSAGE, "mbin", prefix, prefix + "~", limit)
        return len(rows)

    async def for_download(
        self, mailbox: MeshMailbox, message_id: str, chunk_number: int
    ) -> tuple[MeshMessage, str | None]:
        found = await self._get(message_id)
        if found is None:
            raise MeshNotFound(message_id)
        message, _ = found
        if message.recipient != mailbox.mailbox_id:
            raise MeshNotFound(message_id)
        if message.status is MessageStatus.UPLOADING:
            raise MeshNotFound(message_id)  # not in the inbox until every chunk is in
        if message.status is not MessageStatus.ACCEPTED:
            raise MeshGone(message_id)
        if message.message_type is MessageType.REPORT:
            return message, None
        if not 1 <= chunk_number <= message.total_chunks:
            raise MeshNotFound(message_id)
        return message, message.chunks[chunk_number - 1]

    def read_blob(self, digest: str) -> AsyncIterator[bytes]:
        return self._blobs.read(digest)

    def read_small_chunk(self, message: MeshMessage, chunk_number: int) -> bytes | None:
        """A chunk of up to ``INLINE`` bytes, read whole; ``None`` for a larger one (stream it)."""
        digest = message.chunks[chunk_number - 1]
        sizes = message.chunk_sizes
        if digest is None or chunk_number > len(sizes) or sizes[chunk_number - 1] > INLINE:
            return None
        return self._blobs.read_small(digest)

    async def audit_download(
        self,
        mailbox: MeshMailbox,
        message_id: str,
        context: AuditContext,
        nonce: ConsumeNonce | None = None,
    ) -> None:
        writes = self._audit(
            AuditAction.MESH_MESSAGE_DOWNLOAD, mailbox.mailbox_id, message_id, context
        )
        if nonce is not None:
            writes.nonces.append(nonce)
        try:
            await self._store.write(writes)
        except NonceReplayed:
            raise MeshForbidden("Error Duplicated Authentication Token") from None

    async def acknowledge(
        self,
        mailbox: MeshMailbox,
        message_id: str,
        context: AuditContext,
        nonce: ConsumeNonce | None = None,
    ) -> MeshMessage:
        def ack(m: MeshMessage) -> WriteSet | None:
            if m.recipient != mailbox.mailbox_id:
                raise MeshNotFound(message_id)
            if m.status is MessageStatus.ACKNOWLEDGED:
                return None  # acknowledging twice changes nothing
            if m.status is not MessageStatus.ACCEPTED:
                raise MeshGone(message_id)
            now = self.clock()
            m.status = MessageStatus.ACKNOWLEDGED
            m.status_at = _iso(now)
            m.purge_at = _iso(now + self.settings.retention)
            writes = self._audit(
                AuditAction.MESH_MESSAGE_ACKNOWLEDGE, mailbox.mailbox_id, message_id, context
            )
            writes.outbox.append(self._event(m))
            return writes

        return await self._update(message_id, ack, nonce)

    # -- tracking and look-ups -----------------------------------------------------------------

    async def track(self, mailbox: MeshMailbox, message_id: str) -> MeshMessage:
        found = await self._get(message_id)
        if found is None or found[0].sender != mailbox.mailbox_id:
            raise MeshNotFound(message_id)
        if found[0].status is MessageStatus.PURGED:
            raise MeshNotFound(message_id)
        return found[0]

    async def track_local(self, mailbox: MeshMailbox, local_id: str) -> list[MeshMessage]:
        prefix = f"{mailbox.mailbox_id}|{local_id}|"
        rows = await self._store.scan_index(MESSAGE, "mblocal", prefix, prefix + "~", 100)
        found = []
        for _, value in rows:
            record = await self._get(value.rsplit("|", 1)[1])
            if record is not None:
                found.append(record[0])
        return found

    async def mailbox(self, mailbox_id: str) -> MeshMailbox | None:
        return await self._directory.get(MeshMailbox, mailbox_id.upper())

    async def lookup(self, ods_code: str, workflow_id: str) -> list[MeshMailbox]:
        """Mailboxes of ``ods_code`` registered to receive ``workflow_id``."""
        workflow = await self._directory.get(MeshWorkflow, workflow_id)
        if workflow is None:
            return []
        found = []
        for mailbox_id in workflow.receivers:
            mailbox = await self._directory.get(MeshMailbox, mailbox_id)
            if mailbox is not None and mailbox.active and mailbox.ods_code == ods_code.upper():
                found.append(mailbox)
        return found

    async def workflow_search(self, workflow_id: str) -> list[tuple[MeshMailbox, str]]:
        workflow = await self._directory.get(MeshWorkflow, workflow_id)
        if workflow is None:
            return []
        found = []
        for role, ids in (("SENDER", workflow.senders), ("RECEIVER", workflow.receivers)):
            for mailbox_id in ids:
                mailbox = await self._directory.get(MeshMailbox, mailbox_id)
                if mailbox is not None and mailbox.active:
                    found.append((mailbox, role))
        return found

    # -- scheduled: expiry and purge -------------------------------------------------------------

    async def expire_and_purge(self, context: AuditContext, batch: int = 500) -> tuple[int, int]:
        """Undelivered messages past the inbox expiry get a non-delivery report to their sender;
        acknowledged, undeliverable and abandoned messages past retention are purged."""
        now = self.clock()
        expired = 0
        for _, value in await self._store.scan_index(MESSAGE, "mbexp", "", f"{_iso(now)}|~", batch):
            if await self._expire(value.rsplit("|", 1)[1], context):
                expired += 1
        purged = 0
        for _, value in await self._store.scan_index(
            MESSAGE, "mbpurge", "", f"{_iso(now)}|~", batch
        ):
            if await self._purge(value.rsplit("|", 1)[1], context):
                purged += 1
        return expired, purged

    async def _expire(self, message_id: str, context: AuditContext) -> bool:
        now = self.clock()
        days = self.settings.inbox_expiry.days
        event, code, template = REPORT_UNDELIVERED

        def undeliverable(m: MeshMessage) -> WriteSet | None:
            if m.status is not MessageStatus.ACCEPTED or (m.expires_at or "~") > _iso(now):
                return None
            m.status = MessageStatus.UNDELIVERABLE
            m.status_at = _iso(now)
            m.status_event, m.status_code = event, code
            m.status_description = template.format(days)
            m.purge_at = _iso(now + self.settings.retention)
            report = MeshMessage(
                message_id=new_message_id(now),
                sender=m.recipient,
                recipient=m.sender,
                workflow_id=m.workflow_id,
                status=MessageStatus.ACCEPTED,
                message_type=MessageType.REPORT,
                total_chunks=1,
                chunks=[],
                chunk_sizes=[],
                local_id=None,
                subject=m.subject,
                created_at=_iso(now),
                status_at=_iso(now),
                linked_message_id=m.message_id,
                status_event=event,
                status_code=code,
                status_description=m.status_description,
            )
            self._accept(report, now)
            writes = self._audit(
                AuditAction.MESH_MESSAGE_EXPIRE, m.recipient, m.message_id, context
            )
            writes.puts.append(_put(report, 1, None))
            writes.outbox.append(self._event(m))
            return writes

        before = await self._get(message_id)
        after = await self._update(message_id, undeliverable)
        return before is not None and before[0].status is not after.status

    async def _purge(self, message_id: str, context: AuditContext) -> bool:
        now = self.clock()
        digests: list[str] = []

        def purge(m: MeshMessage) -> WriteSet | None:
            if m.status in (MessageStatus.ACCEPTED, MessageStatus.PURGED):
                return None
            if m.purge_at is not None and m.purge_at > _iso(now):
                return None
            digests.extend(c for c in m.chunks if c)
            m.status = MessageStatus.PURGED
            m.status_at = _iso(now)
            m.chunks = []
            return self._audit(AuditAction.MESH_MESSAGE_PURGE, m.recipient, m.message_id, context)

        message = await self._update(message_id, purge)
        if message.status is not MessageStatus.PURGED:
            return False
        # A pack holds other messages' chunks: it goes with the sweep, once none is left.
        for digest in {d for d in digests if pack_of(d) is None}:
            if not await self._store.scan_index(MESSAGE, "mbblob", f"{digest}|", f"{digest}|~", 1):
                self._blobs.delete_if_stale(digest)
        return True

    async def sweep_unreferenced_blobs(self) -> int:
        """Delete blob files and packs that no message names and that are older than the grace
        period.

        A crash between an upload's write and its commit leaves such a file (its record never
        committed), as does an interrupted streamed upload in ``blobs/tmp``. The purge removes
        only the blobs of the messages it purges, so this sweep finds the rest: it walks the
        store one of 256 shards at a time and looks each old file up in the ``mbblob`` index.
        A file an upload is about to share has just had its time refreshed, so it is young
        and kept, as in the purge. A pack goes once no message names it (the ``mbpack``
        index) and nothing has been appended to it within the grace period.
        """
        now = time.time()
        removed = await anyio.to_thread.run_sync(self._blobs.remove_old_temporary, now)
        for pack in await anyio.to_thread.run_sync(self._blobs.old_packs, now):
            if not await self._store.scan_index(
                MESSAGE, "mbpack", f"{pack}|", f"{pack}|~", 1
            ) and self._blobs.delete_pack_if_stale(pack):
                removed += 1
        for shard in range(256):
            for digest in await anyio.to_thread.run_sync(self._blobs.old_digests, shard, now):
                if not await self._store.scan_index(
                    MESSAGE, "mbblob", f"{digest}|", f"{digest}|~", 1
                ) and self._blobs.delete_if_stale(digest):
                    removed += 1
        return removed

    async def reset(self, context: AuditContext) -> int:
        """Sandbox only: every message is purged at once (mesh-client's suite resets per test)."""
        now = self.clock()
        count = 0
        seen: set[str] = set()

        def gone(m: MeshMessage) -> WriteSet | None:
            if m.status is MessageStatus.PURGED:
                return None
            m.status = MessageStatus.PURGED
            m.status_at = _iso(now)
            m.chunks = []
            return WriteSet()

        for param in ("mbin", "mbpurge"):  # between them, every message not yet purged
            while rows := await self._store.scan_index(MESSAGE, param, "", "~", 500):
                fresh = [message_id for message_id, _ in rows if message_id not in seen]
                if not fresh:
                    break  # nothing purgeable left (a record that will not change is not retried)
                seen.update(fresh)
                for message_id in fresh:
                    await self._update(message_id, gone)
                    count += 1
        await self._store.write(
            WriteSet(
                audit=[
                    audit_record(
                        action=AuditAction.MESH_SANDBOX_RESET,
                        outcome=AuditOutcome.SUCCESS,
                        principal=None,
                        context=context,
                        detail=f"{count} messages purged",
                    )
                ]
            )
        )
        return count
