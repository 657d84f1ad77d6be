"""PDS use cases. Every patient read is audited in the same commit as its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from openspine.pds.domain import MAX_SUPERSEDED_HOPS, is_valid_nhs_number, sees_restricted_fields
from openspine.pds.errors import InvalidNhsNumber, PatientInvalidated, PatientNotFound
from openspine.pds.ports import PatientRecords
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.security.principal import Principal
from openspine.platform.storage.ports import ResourceState, StoredResource, WriteSet

__all__ = ["PatientView", "PdsService"]


@dataclass(frozen=True, slots=True)
class PatientView:
    """A patient as this caller may see it: stored bytes, untouched."""

    body: bytes
    version: int

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


class PdsService:
    def __init__(self, records: PatientRecords) -> None:
        self._records = records

    async def read_patient(
        self, principal: Principal, nhs_number: str, context: AuditContext
    ) -> PatientView:
        if not is_valid_nhs_number(nhs_number):
            raise InvalidNhsNumber()
        record = await self._resolve(nhs_number)

        async def audit(outcome: AuditOutcome, detail: str | None, patients: list[str]) -> None:
            event = audit_record(
                action=AuditAction.PDS_PATIENT_READ,
                outcome=outcome,
                principal=principal,
                context=context,
                patients=patients,
                detail=detail,
            )
            await self._records.write(WriteSet(audit=[event]))

        if record is None or record.state is ResourceState.SUPERSEDED:
            await audit(AuditOutcome.FAILURE, "not-found", [nhs_number])
            raise PatientNotFound()
        if record.state is ResourceState.INVALIDATED:
            await audit(AuditOutcome.FAILURE, "invalidated", [nhs_number])
            raise PatientInvalidated()
        patients = [nhs_number] if record.id == nhs_number else [nhs_number, record.id]
        if record.restricted_body is not None and not sees_restricted_fields(principal, record.id):
            await audit(AuditOutcome.SUCCESS, "restricted-view", patients)
            return PatientView(record.restricted_body, record.version)
        await audit(AuditOutcome.SUCCESS, None, patients)
        return PatientView(record.body, record.version)

    async def _resolve(self, nhs_number: str) -> StoredResource | None:
        """The record for ``nhs_number``, following superseded records to their survivor."""
        record = await self._records.get(nhs_number)
        hops = 0
        while (
            record is not None
            and record.state is ResourceState.SUPERSEDED
            and record.successor_id is not None
            and hops < MAX_SUPERSEDED_HOPS
        ):
            record = await self._records.get(record.successor_id)
            hops += 1
        return record
