"""Directory records kept as versioned resources in the platform store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec

from openspine.directory.domain import (
    AccreditedSystem,
    Application,
    MeshMailbox,
    MeshWorkflow,
    MessageHandler,
    Organisation,
    RoleProfile,
    User,
)
from openspine.platform.normalise import normalise_name, normalise_postcode
from openspine.platform.storage.ports import IndexKey, PutResource, Store

__all__ = ["RESOURCE_TYPES", "CachedRecords", "DirectoryRecords", "search_keys"]

T = TypeVar(
    "T",
    Organisation,
    RoleProfile,
    User,
    Application,
    MeshMailbox,
    MeshWorkflow,
    AccreditedSystem,
    MessageHandler,
)

#: Internal resource type names in the store, by record class.
RESOURCE_TYPES: dict[type[msgspec.Struct], str] = {
    Organisation: "directory.Organisation",
    RoleProfile: "directory.RoleProfile",
    User: "directory.User",
    Application: "directory.Application",
    MeshMailbox: "directory.MeshMailbox",
    MeshWorkflow: "directory.MeshWorkflow",
    AccreditedSystem: "directory.AccreditedSystem",
    MessageHandler: "directory.MessageHandler",
}

_ENCODER = msgspec.json.Encoder()


def _key(record: msgspec.Struct) -> str:
    if isinstance(record, Organisation):
        return record.ods_code
    if isinstance(record, RoleProfile):
        return record.role_profile_id
    if isinstance(record, User):
        return record.user_id
    if isinstance(record, Application):
        return record.client_id
    if isinstance(record, MeshMailbox):
        return record.mailbox_id
    if isinstance(record, MeshWorkflow):
        return record.workflow_id
    if isinstance(record, AccreditedSystem):
        return record.asid
    if isinstance(record, MessageHandler):
        return record.party_key
    raise TypeError(type(record).__name__)


def search_keys(record: msgspec.Struct) -> tuple[IndexKey, ...]:
    """What the directory API searches by (ADR 0009's ordered index)."""
    if isinstance(record, Organisation):
        words = {w for w in normalise_name(record.name).split() if len(w) > 1}
        return (
            ("odscode", record.ods_code),
            ("orgpc", f"{normalise_postcode(record.postcode)}|{record.ods_code}"),
            *(("orgrole", f"{r.value}|{record.ods_code}") for r in record.roles),
            *(("orgword", f"{w}|{record.ods_code}") for w in sorted(words)),
        )
    if isinstance(record, AccreditedSystem):
        return tuple(("asint", f"{record.ods_code}|{i}|{record.asid}") for i in record.interactions)
    if isinstance(record, MessageHandler):
        return (
            *(("mhsint", f"{record.ods_code}|{i}|{record.party_key}") for i in record.interactions),
            *(("mhsparty", f"{record.party_key}|{i}") for i in record.interactions),
            ("mhsorg", f"{record.ods_code}|{record.party_key}"),
        )
    if isinstance(record, RoleProfile):
        return (
            ("rpuser", f"{record.user_id}|{record.role_profile_id}"),
            ("rporg", f"{record.ods_code}|{record.role_profile_id}"),
        )
    return ()


class DirectoryRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def scan(
        self, cls: type[T], param: str, low: str, high: str, limit: int = 1000
    ) -> list[T]:
        """Records whose ``param`` key lies in ``[low, high]``, each once, in key order."""
        rows = await self._store.scan_index(RESOURCE_TYPES[cls], param, low, high, limit)
        found: list[T] = []
        seen: set[str] = set()
        for record_id, _ in rows:
            if record_id in seen:
                continue
            seen.add(record_id)
            record = await self.get(cls, record_id)
            if record is not None:
                found.append(record)
        return found

    async def get(self, cls: type[T], key: str) -> T | None:
        stored = await self._store.get(RESOURCE_TYPES[cls], key)
        if stored is None:
            return None
        return msgspec.json.decode(stored.body, type=cls)

    @staticmethod
    def upserts(records: Iterable[msgspec.Struct], current: dict[str, int]) -> list[PutResource]:
        """Create or replace records; ``current`` maps a record's key to its stored version."""
        puts = []
        for r in records:
            key = _key(r)
            version = current.get(key)
            puts.append(
                PutResource(
                    resource_type=RESOURCE_TYPES[type(r)],
                    id=key,
                    version=(version or 0) + 1,
                    body=_ENCODER.encode(r),
                    expected_version=version,
                    search_keys=search_keys(r),
                )
            )
        return puts

    async def versions(self, records: Iterable[msgspec.Struct]) -> dict[str, int]:
        found = {}
        for r in records:
            stored = await self._store.get(RESOURCE_TYPES[type(r)], _key(r))
            if stored is not None:
                found[_key(r)] = stored.version
        return found

    @staticmethod
    def new_records(records: Iterable[msgspec.Struct]) -> list[PutResource]:
        return [
            PutResource(
                resource_type=RESOURCE_TYPES[type(r)],
                id=_key(r),
                version=1,
                body=_ENCODER.encode(r),
                expected_version=None,
                search_keys=search_keys(r),
            )
            for r in records
        ]


class CachedRecords:
    """Directory records by key, each kept for ``ttl`` seconds after it was read (a miss too).

    For the look-ups a service repeats on every request: a MESH send reads its sender's and its
    recipient's mailbox and its workflow, and a SQLite read after another process's commit
    fetches its pages again (ADR 0018); the three were a fifth of a web worker's busy Python time
    per send (ADR 0022). A change to the directory reaches a process within ``ttl`` seconds (a
    bearer token likewise keeps the role profile it was issued with until it expires, ADR 0006).
    """

    #: Records kept per process; past it the cache starts again empty.
    LIMIT = 10_000

    def __init__(
        self,
        records: DirectoryRecords,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._ttl = ttl
        self._clock = clock
        self._kept: dict[tuple[type[msgspec.Struct], str], tuple[float, msgspec.Struct | None]] = {}

    async def get(self, cls: type[T], key: str) -> T | None:
        now = self._clock()
        kept = self._kept.get((cls, key))
        if kept is not None and kept[0] > now:
            return kept[1]  # type: ignore[return-value]  # kept under its own class
        record = await self._records.get(cls, key)
        if len(self._kept) >= self.LIMIT:
            self._kept.clear()
        self._kept[(cls, key)] = (now + self._ttl, record)
        return record
