"""Directory records kept as versioned resources in the platform store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

from openspine.directory.domain import Application, Organisation, RoleProfile, User
from openspine.platform.storage.ports import PutResource, Store

__all__ = ["RESOURCE_TYPES", "DirectoryRecords"]

T = TypeVar("T", Organisation, RoleProfile, User, Application)

#: Internal resource type names in the store, by record class.
RESOURCE_TYPES: dict[type[msgspec.Struct], str] = {
    Organisation: "directory.Organisation",
    RoleProfile: "directory.RoleProfile",
    User: "directory.User",
    Application: "directory.Application",
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
