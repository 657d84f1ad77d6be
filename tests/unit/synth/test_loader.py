"""Loading a population: in worker processes or in this one, the store ends up the same."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.sqlite import SqliteStore
from openspine.synth import loader
from openspine.synth.loader import load_population, patient_put
from openspine.synth.population import BLOCK, PatientMaker, Population

pytestmark = pytest.mark.anyio


async def _load(path: Path, population: Population, workers: int) -> SqliteStore:
    upgrade(f"sqlite:///{path}")
    store = SqliteStore(path)
    await store.start()
    assert await load_population(store, population, workers=workers) == population.size
    return store


async def test_workers_load_what_this_process_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    population = Population(6, 4 * BLOCK + 11)  # enough blocks for the worker processes
    pooled: list[int] = []
    in_pool = loader._load_in_parallel

    async def counted(*args: Any, **kwargs: Any) -> int:
        pooled.append(1)
        return await in_pool(*args, **kwargs)

    monkeypatch.setattr(loader, "_load_in_parallel", counted)
    parallel = await _load(tmp_path / "parallel.db", population, workers=2)
    inline = await _load(tmp_path / "inline.db", population, workers=1)
    assert pooled == [1]  # the first load used the worker processes, the second did not
    try:
        maker = PatientMaker(population)
        for index in (0, 2, 4):
            for facts in maker.block(index)[:3]:
                expected = patient_put(facts)
                for store in (parallel, inline):
                    got = await store.get("Patient", facts.nhs_number)
                    assert got is not None
                    assert got.body == expected.body
                    assert expected.search_keys
                    param, value = expected.search_keys[0]
                    hits = await store.scan_index("Patient", param, value, value, 50)
                    assert (facts.nhs_number, value) in hits
        for store in (parallel, inline):
            assert await store.count("Patient") == population.size
            assert await store.merge_pending_index() == 0  # merged by the load itself
            result = await verify_chain(store)
            assert result.ok
            assert result.checked == maker.blocks  # one audit event per block
    finally:
        await parallel.close()
        await inline.close()


async def test_the_cyclic_collector_is_off_while_loading_and_back_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    write_block = loader._write_block

    async def watched(*args: Any) -> int:
        seen.append(gc.isenabled())
        return await write_block(*args)

    monkeypatch.setattr(loader, "_write_block", watched)
    assert gc.isenabled()
    store = await _load(tmp_path / "store.db", Population(3, BLOCK + 5), workers=1)
    await store.close()
    assert seen == [False, False]
    assert gc.isenabled()


def test_a_worker_that_makes_blocks_runs_without_the_cyclic_collector() -> None:
    try:
        loader._start_worker(Population(3, 10))
        assert not gc.isenabled()
    finally:
        gc.enable()
