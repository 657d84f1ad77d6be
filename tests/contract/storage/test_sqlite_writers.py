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
from openspine.platform.storage.ports import PutResource, VersionConflict, WriteSet
from openspine.platform.storage.sqlite import SqliteStore
from tests.contract.storage.records import audit_event

pytestmark = pytest.mark.anyio


async def test_two_writers_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    upgrade(f"sqlite:///{path}")
    first, second = SqliteStore(path, max_batch=8), SqliteStore(path, max_batch=8)
    await first.start()
    await second.start()
    try:
        await first.write(WriteSet(puts=[PutResource("Thing", "counter", 1, b"1", None)]))

        async def bump(store: SqliteStore) -> bool:
            """One read-modify-write of the shared counter: True if it won."""
            current = await store.get("Thing", "counter")
            assert current is not None
            nxt = current.version + 1
            try:
                await store.write(
                    WriteSet(
                        puts=[
                            PutResource("Thing", "counter", nxt, str(nxt).encode(), current.version)
                        ],
                        audit=[audit_event()],
                    )
                )
            except VersionConflict:
                return False
            return True

        async def create(store: SqliteStore, name: str) -> None:
            await store.write(
                WriteSet(puts=[PutResource("Thing", name, 1, b"{}", None)], audit=[audit_event()])
            )

        stores = (first, second)
        outcomes = await asyncio.gather(
            *(bump(stores[i % 2]) for i in range(60)),
            *(create(stores[i % 2], f"t{i}") for i in range(200)),
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
