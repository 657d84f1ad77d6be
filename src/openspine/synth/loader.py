"""Loading a population into a store: chunked bulk loads, each chunk audited with its data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from openspine.pds.fhir import encode, restricted_view
from openspine.pds.ports import PATIENT
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import PutResource, ResourceState, Store
from openspine.synth.patients import PatientFacts, patient_resource

__all__ = ["load_patients", "patient_put"]

CHUNK = 5000
_SYSTEM = AuditContext(request_id=None, correlation_id=None)


def patient_put(
    facts: PatientFacts,
    state: ResourceState = ResourceState.ACTIVE,
    successor_id: str | None = None,
) -> PutResource:
    resource = patient_resource(facts)
    return PutResource(
        resource_type=PATIENT,
        id=facts.nhs_number,
        version=facts.version,
        body=encode(resource),
        restricted_body=encode(restricted_view(resource)) if facts.restricted else None,
        expected_version=None,
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
