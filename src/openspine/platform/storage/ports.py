"""The storage port: what services may ask of a store, in the store's own vocabulary.

A write is a declarative :class:`WriteSet` (conditional resource puts, audit events, outbox
messages, an idempotency record, single-use nonces) that the adapter's group-commit writer applies
atomically: all of it commits, or none of it does. Reads return stored bytes untouched.

The audit trail is two hash chains (:class:`AuditChain`, ADR 0025): the events of a write set
that changes something are appended to ``main`` in the change's own transaction; the events of a
write set of nothing but events (a read, a search, a refusal) to ``access``.

Adapters translate their driver's exceptions into :class:`StoreError` subclasses; nothing above
this package sees a driver type. The port is async: the SQLite adapter answers point reads
synchronously inside the coroutine (cheaper than a thread hop, see ADR 0004), the PostgreSQL
adapter awaits its pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "AlreadyExists",
    "AuditChain",
    "AuditRecord",
    "AuditRow",
    "ConsumeNonce",
    "IdempotencyKeyTaken",
    "IdempotencyRecord",
    "IndexKey",
    "NonceReplayed",
    "OutboxMessage",
    "PutResource",
    "ResourceState",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredResource",
    "VersionConflict",
    "WriteResult",
    "WriteSet",
]


class StoreError(Exception):
    """Base of storage failures, free of driver types."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused the transaction; safe to retry later."""


class VersionConflict(StoreError):
    """A conditional put found another version than the one expected."""


class AlreadyExists(StoreError):
    """A create found the resource already there."""


class NonceReplayed(StoreError):
    """A single-use value (a JWT ``jti``) was already consumed."""


class IdempotencyKeyTaken(StoreError):
    """Another write with the same caller and X-Request-ID committed first."""


class ResourceState(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    INVALIDATED = "invalidated"


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A versioned resource as stored: canonical JSON bytes and its access-restricted copy."""

    resource_type: str
    id: str
    version: int
    state: ResourceState
    body: bytes
    restricted_body: bytes | None = None
    successor_id: str | None = None


#: One search key of a resource: (parameter, value). Values are compared byte by byte, so a
#: service encodes what it searches as ordered text (``"2010-10-22|SMITH"``) and scans ranges.
IndexKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PutResource:
    """Create (``expected_version=None``) or conditionally replace a resource.

    ``body`` must already carry the new version in its ``meta.versionId``: the caller renders it,
    the store only checks that ``expected_version`` is still current and stores ``version``.
    ``search_keys`` replaces the resource's search keys in the same commit (``None`` keeps them).
    ``keep_history=False`` replaces the resource without keeping its previous version in the
    history: for records no API reads back by version, whose every change the audit trail holds
    (MESH messages, ADR 0022).
    """

    resource_type: str
    id: str
    version: int
    body: bytes
    expected_version: int | None
    state: ResourceState = ResourceState.ACTIVE
    restricted_body: bytes | None = None
    successor_id: str | None = None
    search_keys: tuple[IndexKey, ...] | None = None
    keep_history: bool = True

    def __reduce__(self) -> tuple[type[PutResource], tuple[Any, ...]]:
        # Pickled by the field values, not the slots dataclass's generic state functions: a
        # bulk load's blocks come from worker processes (half the pickling time, ADR 0020).
        return (
            PutResource,
            (
                self.resource_type,
                self.id,
                self.version,
                self.body,
                self.expected_version,
                self.state,
                self.restricted_body,
                self.successor_id,
                self.search_keys,
                self.keep_history,
            ),
        )


class AuditChain(StrEnum):
    """The audit trail's two hash chains, each verified on its own (ADR 0025)."""

    #: Events committed with the change they record, in its transaction.
    MAIN = "main"
    #: Events of write sets with nothing else in them: who read, searched or was refused what.
    #: Kept apart so that recording a read does not change the data the readers cache.
    ACCESS = "access"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event's canonical bytes; the writer chains it (sequence number and hash)."""

    event_id: str
    recorded_at: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An audit event as stored in the chain."""

    seq: int
    event_id: str
    recorded_at: str
    payload: bytes
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first response to a write, replayed for a retry with the same X-Request-ID."""

    caller: str
    request_id: str
    fingerprint: str
    status: int
    headers: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class ConsumeNonce:
    issuer: str
    value: str
    expires_at: int


@dataclass(slots=True)
class WriteSet:
    """Everything one use case writes; committed atomically by the group-commit writer."""

    puts: list[PutResource] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    nonces: list[ConsumeNonce] = field(default_factory=list)
    idempotency: IdempotencyRecord | None = None
    #: Directories whose file systems are synced before this commits: the write names files
    #: (MESH message bodies) written without a sync of their own, which must not be lost once
    #: the record naming them is (ADR 0016). One sync serves the whole batch.
    sync_dirs: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.puts or self.audit or self.outbox or self.nonces or self.idempotency)

    def is_audit_only(self) -> bool:
        """Nothing but audit events: nothing conditional, so nothing to roll back alone. Its
        events go to the ``access`` chain, the others' to ``main`` (:class:`AuditChain`)."""
        return not (self.puts or self.outbox or self.nonces or self.idempotency)


@dataclass(frozen=True, slots=True)
class WriteResult:
    audit_seqs: tuple[int, ...]


class Store(Protocol):
    """The storage port. One instance per process, opened by ``start`` and closed by ``close``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers."""

    async def get(self, resource_type: str, resource_id: str) -> StoredResource | None: ...

    async def get_many(
        self, resource_type: str, resource_ids: Sequence[str]
    ) -> list[StoredResource]: ...

    async def count(self, resource_type: str) -> int: ...

    async def scan_index(
        self, resource_type: str, param: str, low: str, high: str, limit: int
    ) -> list[tuple[str, str]]:
        """(id, value) of keys of ``param`` with ``low <= value <= high``, in value order."""

    async def write(self, writes: WriteSet) -> WriteResult:
        """Apply atomically; answer only once the commit is durable (group-committed)."""

    async def bulk_load(
        self, resources: Iterable[PutResource], audit: AuditRecord, *, index_later: bool = False
    ) -> int:
        """Insert many new resources in one transaction, with one audit event; return count.

        With ``index_later`` their search keys wait, unordered, until ``merge_pending_index``
        (a large load of many chunks: the index is then filled in key order once, ADR 0014);
        until then the resources can be read but not found by search. It is meant for loading
        a store that is not being served: a resource rewritten before the merge keeps its new
        keys, and may also be found by its loaded ones.
        """

    async def merge_pending_index(self) -> int:
        """Move every pending search key into the search index in key order; return the count."""

    async def get_idempotency(self, caller: str, request_id: str) -> IdempotencyRecord | None: ...

    async def lead(self, duty: str) -> bool:
        """Whether this process leads ``duty``, a scheduled job that one process of all those
        sharing the store runs: it holds the duty's lease, or has just taken it.

        The lease stays with the process until it closes the store or dies; the operating
        system (SQLite) or the database (PostgreSQL) then frees it, and the next process to
        ask takes it. Raise :class:`StoreUnavailable` if the store cannot say.
        """

    def audit_rows(
        self, chain: AuditChain = AuditChain.MAIN, batch_size: int = 5000
    ) -> AsyncIterator[AuditRow]:
        """Every row of ``chain`` in sequence order."""

    async def audit_head(self, chain: AuditChain = AuditChain.MAIN) -> tuple[int, str]:
        """The head of ``chain`` (last sequence number, its hash) as recorded by the writer."""
