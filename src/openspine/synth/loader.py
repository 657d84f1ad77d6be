"""Loading a population into a store: chunked bulk loads, each chunk audited with its data.

A large population is made and rendered (resource, restricted copy, search keys) in worker
processes, block by block, while this process writes the blocks already made; the search keys
wait in the store's pending table and are merged into the index once, in key order, at the end
(ADR 0014). A small one is made in this process: starting workers would cost more than it saves.

Python's cyclic garbage collector is off while a population loads, in this process and in the
workers. Loading makes and frees millions of dicts, lists and tuples that hold no cycles, so
reference counting frees every one of them; the collector only walked them again and again
(5-10 % of a load in paired runs, ADR 0014).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice

from openspine.pds.service import patient_put as pds_patient_put
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.storage.ports import AuditRecord, PutResource, ResourceState, Store
from openspine.synth.patients import PatientFacts, patient_resource
from openspine.synth.population import PatientMaker, Population

__all__ = ["load_patients", "load_population", "patient_put"]

CHUNK = 5000
#: Below this many blocks the population is made in this process.
_PARALLEL_FROM_BLOCKS = 4
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


def _audit(count: int) -> AuditRecord:
    return audit_record(
        action=AuditAction.PDS_POPULATION_LOAD,
        outcome=AuditOutcome.SUCCESS,
        principal=None,
        context=_SYSTEM,
        detail=f"{count} patients loaded by operator",
    )


async def load_patients(
    store: Store,
    puts: Iterable[PutResource],
    progress: Callable[[int], None] | None = None,
    *,
    index_later: bool = False,
) -> int:
    """Bulk-load new patients; each chunk commits with an audit event naming its size."""
    total = 0
    for chunk in _chunks(puts):
        total += await store.bulk_load(chunk, _audit(len(chunk)), index_later=index_later)
        if progress is not None:
            progress(len(chunk))
    return total


# -- making blocks in worker processes -----------------------------------------------------------

_maker: PatientMaker | None = None


def _start_worker(population: Population) -> None:
    global _maker
    _maker = PatientMaker(population)
    gc.disable()  # this process only makes blocks (see the module docstring)


def _rendered_block(index: int) -> list[PutResource]:
    assert _maker is not None, "the pool's initializer makes the maker"
    return [patient_put(facts) for facts in _maker.block(index)]


async def load_population(
    store: Store,
    population: Population,
    first: Iterable[PutResource] = (),
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
) -> int:
    """Load ``first`` and then the whole population, and merge their search keys once."""
    with _no_cyclic_gc():
        total = await load_patients(store, first, progress, index_later=True)
        maker = PatientMaker(population)
        workers = workers if workers is not None else os.cpu_count() or 1
        if maker.blocks < _PARALLEL_FROM_BLOCKS or workers < 2:
            for index in range(maker.blocks):
                block = [patient_put(facts) for facts in maker.block(index)]
                total += await _write_block(store, block, progress)
        else:
            total += await _load_in_parallel(store, population, maker.blocks, workers, progress)
        await store.merge_pending_index()
    return total


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off for a load, then back as it was, with one full collection for
    any cycles the event loop made meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect()


async def _write_block(
    store: Store, block: list[PutResource], progress: Callable[[int], None] | None
) -> int:
    count = await store.bulk_load(block, _audit(len(block)), index_later=True)
    if progress is not None:
        progress(count)
    return count


async def _load_in_parallel(
    store: Store,
    population: Population,
    blocks: int,
    workers: int,
    progress: Callable[[int], None] | None,
) -> int:
    # spawn, not fork: this process already runs the store's writer thread.
    context = multiprocessing.get_context("spawn")
    total = 0
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(population,)
    ) as pool:
        # A bounded window of blocks in flight: made ahead of the writer, never piling up.
        pending: deque[Future[list[PutResource]]] = deque()
        next_block = 0
        while next_block < blocks or pending:
            while next_block < blocks and len(pending) < 2 * workers:
                pending.append(pool.submit(_rendered_block, next_block))
                next_block += 1
            block = await asyncio.wrap_future(pending.popleft())
            total += await _write_block(store, block, progress)
    return total
