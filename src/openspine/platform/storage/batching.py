"""The part of group commit that both adapters share: chaining audit events within a batch,
and the parameter rows a resource write binds (the same columns in both stores' SQL)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from openspine.platform.audit.chain import chain_hash
from openspine.platform.storage.ports import (
    AuditRecord,
    IdempotencyRecord,
    IndexKey,
    PutResource,
    WriteResult,
    WriteSet,
)

__all__ = [
    "ChainCursor",
    "ChainedRow",
    "IndexRow",
    "idempotency_row",
    "index_changes",
    "index_rows",
    "insert_row",
    "keys_text",
    "link_events",
    "now",
    "stored_keys",
    "update_row",
]

#: The parameters of ``SQL.INDEX_INSERT`` and ``SQL.INDEX_DELETE_KEY``: type, param, value, id.
IndexRow = tuple[str, str, str, str]
#: An audit row as chained, the parameters of ``SQL.AUDIT_INSERT`` and ``SQL.ACCESS_INSERT``:
#: seq, event id, time, payload, previous hash, hash.
ChainedRow = tuple[int, str, str, bytes, str, str]


def now() -> str:
    """The store's timestamp for a row written now (UTC, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def keys_text(keys: Iterable[IndexKey] | None) -> str | None:
    """A resource's search keys as its row keeps them (``index_keys``, migration 0006): a JSON
    array of ``[param, value]`` pairs, or NULL for none."""
    pairs = sorted(set(keys or ()))
    return orjson.dumps(pairs).decode() if pairs else None


def stored_keys(text: str | bytes | None) -> list[IndexKey]:
    """The search keys a row keeps (:func:`keys_text`)."""
    if not text:
        return []
    return [(str(param), str(value)) for param, value in orjson.loads(text)]


def insert_row(put: PutResource, at: str) -> tuple[Any, ...]:
    """The parameters of ``SQL.INSERT`` (and of the bulk loads' COPY) for a new resource."""
    return (
        put.resource_type,
        put.id,
        put.version,
        put.state.value,
        put.body,
        put.restricted_body,
        put.successor_id,
        at,
        keys_text(put.search_keys),
    )


def idempotency_row(record: IdempotencyRecord, at: str) -> tuple[Any, ...]:
    """The parameters of ``SQL.IDEMPOTENCY_INSERT``: the answer kept for a retried request."""
    return (
        record.caller,
        record.request_id,
        record.fingerprint,
        record.status,
        record.headers,
        record.body,
        at,
    )


def update_row(put: PutResource, at: str, kept_keys: str | None) -> tuple[Any, ...]:
    """The parameters of ``SQL.UPDATE``: the new version, where the expected one is current.
    ``kept_keys``: the row's keys (``index_keys``), kept where the update leaves them alone."""
    return (
        put.version,
        put.state.value,
        put.body,
        put.restricted_body,
        put.successor_id,
        at,
        kept_keys if put.search_keys is None else keys_text(put.search_keys),
        put.resource_type,
        put.id,
        put.expected_version,
    )


def index_rows(put: PutResource) -> list[IndexRow]:
    """The parameters of ``SQL.INDEX_INSERT`` for the resource's search keys."""
    return [(put.resource_type, param, value, put.id) for param, value in put.search_keys or ()]


def index_changes(
    put: PutResource, indexed: Iterable[IndexKey]
) -> tuple[list[IndexRow], list[IndexRow]]:
    """The rows to delete (``SQL.INDEX_DELETE_KEY``) and to insert (``SQL.INDEX_INSERT``) so that
    a resource whose keys are ``indexed`` has those of ``put`` instead.

    A key the update keeps is not touched: each row deleted or inserted costs a change in the
    index's B-tree, and most updates keep most keys.
    A MESH acknowledgement swaps the message's three inbox keys for one purge key and keeps the
    rest; a PDS update that leaves names and birth date alone keeps every key.
    """
    have = set(indexed)
    want = set(put.search_keys or ())
    kind, rid = put.resource_type, put.id
    gone = [(kind, param, value, rid) for param, value in sorted(have - want)]
    new = [(kind, param, value, rid) for param, value in sorted(want - have)]
    return gone, new


@dataclass(slots=True)
class ChainCursor:
    """The audit chain head while a batch is being applied; rewound when a write set fails."""

    seq: int
    hash: str

    def link(self, record: AuditRecord) -> ChainedRow:
        """Advance over ``record``; return its row: seq, id, time, payload, prev hash, hash."""
        prev = self.hash
        self.seq += 1
        self.hash = chain_hash(prev, self.seq, record.payload)
        return (self.seq, record.event_id, record.recorded_at, record.payload, prev, self.hash)

    def mark(self) -> tuple[int, str]:
        return self.seq, self.hash

    def rewind(self, mark: tuple[int, str]) -> None:
        self.seq, self.hash = mark


def link_events(cursor: ChainCursor, writes: WriteSet, rows: list[ChainedRow]) -> WriteResult:
    """Chain the events of a write set of nothing but events after ``cursor`` and add their rows
    to ``rows``, which the batch inserts with one ``executemany`` (nothing in such a write set
    can fail alone, ADR 0013); the write set's result."""
    linked = [cursor.link(record) for record in writes.audit]
    rows.extend(linked)
    return WriteResult(tuple(row[0] for row in linked))
