"""Several processes' writers on one SQLite file (``openspine serve --workers N``).

Each ``SqliteStore`` here opens the lock file on its own, so the two writers contend for the
``flock`` exactly as two worker processes would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import PutResource, WriteSet
from openspine.platform.storage.sqlite import SqliteStore
from tests.contract.storage.records import bump_counter, create_thing

pytestmark = pytest.mark.anyio


async def test_two_writers_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    upgrade(f"sqlite:///{path}")
    first, second = SqliteStore(path, max_batch=8), SqliteStore(path, max_batch=8)
    await first.start()
    await second.start()
    try:
        await first.write(WriteSet(puts=[PutResource("Thing", "counter", 1, b"1", None)]))

        stores = (first, second)
        outcomes = await asyncio.gather(
            *(bump_counter(stores[i % 2]) for i in range(60)),
            *(create_thing(stores[i % 2], f"t{i}") for i in range(200)),
        )
        wins = sum(1 for outcome in outcomes[:60] if outcome)
        counter = await second.get("Thing", "counter")
        assert counter is not None
        assert counter.version == 1 + wins  # every winner counted, no lost update
        assert await first.count("Thing") == 201
        result = await verify_chain(first)
        assert result.ok
        assert result.checked == wins + 200
        assert path.with_name("shared.db.writer-lock").exists()
    finally:
        await first.close()
        await second.close()
