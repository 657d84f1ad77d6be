"""Directory records kept for a few seconds: a repeated look-up reads the store once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openspine.directory.domain import MeshMailbox, MeshWorkflow
from openspine.directory.storage import CachedRecords, DirectoryRecords
from openspine.platform.storage.factory import open_store
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import Store, WriteSet

pytestmark = pytest.mark.anyio


def mailbox(active: bool = True) -> MeshMailbox:
    return MeshMailbox(
        mailbox_id="X26OT001",
        mailbox_name="Practice",
        ods_code="X26",
        org_code="X26",
        sealed_password="sealed",
        active=active,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    upgrade(url)
    opened = open_store(url, max_batch=8)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


async def save(store: Store, record: MeshMailbox) -> None:
    records = DirectoryRecords(store)
    puts = DirectoryRecords.upserts([record], await records.versions([record]))
    await store.write(WriteSet(puts=puts))


async def test_a_record_is_kept_for_its_time_then_read_again(store: Store) -> None:
    now = [100.0]
    cached = CachedRecords(DirectoryRecords(store), ttl=5, clock=lambda: now[0])
    await save(store, mailbox())
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox()

    await save(store, mailbox(active=False))  # deactivated in the directory
    now[0] += 4.9
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox()  # still kept
    now[0] += 0.2
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox(active=False)


async def test_a_miss_is_kept_too_and_classes_do_not_mix(store: Store) -> None:
    now = [0.0]
    cached = CachedRecords(DirectoryRecords(store), ttl=5, clock=lambda: now[0])
    assert await cached.get(MeshMailbox, "X26OT001") is None
    await save(store, mailbox())
    assert await cached.get(MeshMailbox, "X26OT001") is None  # the miss is kept
    assert await cached.get(MeshWorkflow, "X26OT001") is None  # another class, another key
    now[0] = 5.0
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox()


async def test_past_its_limit_the_cache_starts_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CachedRecords, "LIMIT", 2)
    cached = CachedRecords(DirectoryRecords(store), ttl=60, clock=lambda: 0.0)
    await save(store, mailbox())
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox()
    await save(store, mailbox(active=False))
    await cached.get(MeshMailbox, "A")
    await cached.get(MeshMailbox, "B")  # the third key: everything kept so far is dropped
    assert await cached.get(MeshMailbox, "X26OT001") == mailbox(active=False)
