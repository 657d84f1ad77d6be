"""Loading a population into a store: chunked bulk loads, each chunk audited with its data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice

from openspine.pds.service import patient_put as pds_patient_put
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import PutResource, ResourceState, Store
from openspine.synth.patients import PatientFacts, patient_resource

__all__ = ["load_patients", "patient_put"]

CHUNK = 5000
_SYSTEM = AuditContext(request_id=None, correlation_id=None)
_TODAY = datetime.now(UTC).date().isoformat()


def patient_put(
    facts: PatientFacts,
    state: ResourceState = ResourceState.ACTIVE,
    successor_id: str | None = None,
) -> PutResource:
    """A new patient with its restricted copy and search keys, as PDS itself writes them."""
    return pds_patient_put(
        patient_resource(facts),
        expected_version=None,
        today=_TODAY,
        state=state,
        successor_id=successor_id,
    )


def _chunks(items: Iterable[PutResource]) -> Iterator[list[PutResource]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


async def load_patients(
    store: Store, puts: Iterable[PutResource], progress: Callable[[int], None] | None = None
) -> int:
    """Bulk-load new patients; each chunk commits with an audit event naming its size."""
    total = 0
    for chunk in _chunks(puts):
        audit = audit_record(
            action=AuditAction.PDS_POPULATION_LOAD,
            outcome=AuditOutcome.SUCCESS,
            principal=None,
            context=_SYSTEM,
            detail=f"{len(chunk)} patients loaded by operator",
        )
        total += await store.bulk_load(chunk, audit)
        if progress is not None:
            progress(len(chunk))
    return total
