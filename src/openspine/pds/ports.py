"""What PDS needs from storage."""

from __future__ import annotations

from typing import Protocol

from openspine.platform.storage.ports import StoredResource, WriteResult, WriteSet

__all__ = ["PATIENT", "PatientRecords"]

PATIENT = "Patient"


class PatientRecords(Protocol):
    async def get(self, nhs_number: str) -> StoredResource | None: ...

    async def write(self, writes: WriteSet) -> WriteResult: ...
