"""Directory records kept as versioned resources in the platform store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

from openspine.directory.domain import (
    Application,
    MeshMailbox,
    MeshWorkflow,
    Organisation,
    RoleProfile,
    User,
)
from openspine.platform.storage.ports import PutResource, Store

__all__ = ["RESOURCE_TYPES", "DirectoryRecords"]

T = TypeVar("T", Organisation, RoleProfile, User, Application, MeshMailbox, MeshWorkflow)

#: Internal resource type names in the store, by record class.
RESOURCE_TYPES: dict[type[msgspec.Struct], str] = {
    Organisation: "directory.Organisation",
    RoleProfile: "directory.RoleProfile",
    User: "directory.User",
    Application: "directory.Application",
    MeshMailbox: "directory.MeshMailbox",
    MeshWorkflow: "directory.MeshWorkflow",
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
    raise TypeError(type(record).__name__)


class DirectoryRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

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
            )
            for r in records
        ]
