"""Migration 0007 on both stores: the audit trail's ``access`` chain (ADR 0025)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.factory import open_store
from openspine.platform.storage.migrate import downgrade, upgrade
from openspine.platform.storage.ports import (
    AuditChain,
    ConsumeNonce,
    StoreUnavailable,
    WriteSet,
)
from openspine.platform.storage.sqlite_access import access_path
from tests.contract.storage.records import audit_event
from tests.postgres import empty_store

pytestmark = pytest.mark.anyio

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def record_change(url: str, value: str) -> None:
    """An event with a change (a used token), as every version of the code writes it."""
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        used = ConsumeNonce("test", value, 2_000_000_000)
        await store.write(WriteSet(nonces=[used], audit=[audit_event()]))
    finally:
        await store.close()


async def record_reads(url: str, count: int) -> None:
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        for _ in range(count):
            await store.write(WriteSet(audit=[audit_event()]))
    finally:
        await store.close()


async def chains(url: str) -> dict[AuditChain, tuple[bool, int]]:
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        results = {chain: await verify_chain(store, chain) for chain in AuditChain}
    finally:
        await store.close()
    return {chain: (result.ok, result.checked) for chain, result in results.items()}


@pytest.mark.parametrize("kind", KINDS)
async def test_the_upgrade_adds_an_empty_access_chain_and_keeps_the_main_one(
    kind: str, tmp_path: Path
) -> None:
    with empty_store(kind, tmp_path, "access") as url:
        upgrade(url, "0006")
        for n in range(3):
            await record_change(url, f"before-{n}")

        upgrade(url)

        assert await chains(url) == {AuditChain.MAIN: (True, 3), AuditChain.ACCESS: (True, 0)}
        await record_reads(url, 4)
        await record_change(url, "after")
        assert await chains(url) == {AuditChain.MAIN: (True, 4), AuditChain.ACCESS: (True, 4)}


async def test_a_downgrade_on_postgres_never_drops_access_events(tmp_path: Path) -> None:
    with empty_store("postgres", tmp_path, "access_down") as url:
        upgrade(url)
        downgrade(url, "0006")  # empty: the table goes
        upgrade(url)
        await record_reads(url, 2)
        with pytest.raises(RuntimeError, match="2 events"):
            downgrade(url, "0006")
        assert await chains(url) == {AuditChain.MAIN: (True, 0), AuditChain.ACCESS: (True, 2)}


async def test_on_sqlite_the_access_chain_is_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    await record_reads(url, 3)
    with sqlite3.connect(path) as data:
        tables = {row[0] for row in data.execute("SELECT name FROM sqlite_schema")}
        (main_events,) = data.execute("SELECT count(*) FROM audit_events").fetchone()
    data.close()
    with sqlite3.connect(access_path(path)) as access:
        (journal,) = access.execute("PRAGMA journal_mode").fetchone()
        (access_events,) = access.execute("SELECT count(*) FROM access_events").fetchone()
    access.close()
    assert "access_events" not in tables  # the data file did not change for the reads
    assert (main_events, access_events) == (0, 3)
    assert journal == "wal"
    downgrade(url, "0006")  # the data file only: the access file and its events stay
    assert access_path(path).is_file()
    upgrade(url)
    assert await chains(url) == {AuditChain.MAIN: (True, 0), AuditChain.ACCESS: (True, 3)}


def remove_access_file(store_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{access_path(store_path)}{suffix}").unlink(missing_ok=True)


async def test_a_lost_access_file_is_not_made_again(tmp_path: Path) -> None:
    """Reads are refused until an operator restores it: a chain started afresh would hide
    what was lost."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    await record_reads(url, 2)
    remove_access_file(path)
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        with pytest.raises(StoreUnavailable, match="openspine migrate"):
            await store.write(WriteSet(audit=[audit_event()]))
        await store.write(WriteSet(nonces=[ConsumeNonce("t", "v", 2_000_000_000)]))  # changes go on
        with pytest.raises(StoreUnavailable):
            await store.audit_head(AuditChain.ACCESS)
    finally:
        await store.close()
    assert not access_path(path).exists()
