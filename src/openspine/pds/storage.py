"""PDS records in the platform store (Patient resources keyed by NHS number)."""

from __future__ import annotations

from openspine.pds.ports import PATIENT
from openspine.platform.storage.ports import Store, StoredResource, WriteResult, WriteSet

__all__ = ["StorePatientRecords"]


class StorePatientRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, nhs_number: str) -> StoredResource | None:
        return await self._store.get(PATIENT, nhs_number)

    async def write(self, writes: WriteSet) -> WriteResult:
        return await self._store.write(writes)
