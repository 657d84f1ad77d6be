"""Migration 0004 on SQLite: the audit sequence number becomes the rowid, events kept intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.factory import open_store
from openspine.platform.storage.migrate import downgrade, schema_behind, upgrade
from openspine.platform.storage.ports import ConsumeNonce, WriteSet

pytestmark = pytest.mark.anyio


def audit_indexes(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute("PRAGMA index_list(audit_events)")]
    conn.close()
    return names


def seq_is_rowid(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT rowid = seq FROM audit_events").fetchall()
        declared = conn.execute(
            "SELECT type FROM pragma_table_info('audit_events') WHERE name = 'seq'"
        ).fetchone()[0]
    conn.close()
    return declared == "INTEGER" and all(same for (same,) in rows)


async def write_events(url: str, count: int) -> None:
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        for n in range(count):
            event = audit_record(
                action=AuditAction.PDS_PATIENT_READ,
                outcome=AuditOutcome.SUCCESS,
                principal=None,
                context=AuditContext(None, None),
                detail=f"event {n}",
            )
            # With a change (a used token): the event joins the main chain. A read's would go
            # to the access chain, which a store older than 0007 has not got (ADR 0025).
            used = ConsumeNonce("test", event.event_id, 2_000_000_000)
            await store.write(WriteSet(nonces=[used], audit=[event]))
    finally:
        await store.close()


async def chain_ok(url: str) -> tuple[bool, int]:
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        result = await verify_chain(store)
    finally:
        await store.close()
    return result.ok, result.checked


async def test_events_written_before_the_upgrade_keep_their_chain(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0003")
    await write_events(url, 25)
    assert len(audit_indexes(path)) == 2  # the sequence number's own B-tree, and event_id's
    assert not seq_is_rowid(path)

    upgrade(url)

    assert len(audit_indexes(path)) == 1  # event_id's only: the sequence number is the rowid
    assert seq_is_rowid(path)
    assert await chain_ok(url) == (True, 25)
    await write_events(url, 5)  # and the chain goes on from where it was
    assert await chain_ok(url) == (True, 30)
    with sqlite3.connect(path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO audit_events SELECT seq + 1000, event_id, recorded_at, payload,"
            " prev_hash, hash FROM audit_events WHERE seq = 1"
        )  # event ids stay unique
    conn.close()


async def test_the_downgrade_gives_the_old_table_back(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    await write_events(url, 10)
    downgrade(url, "0003")
    assert len(audit_indexes(path)) == 2
    assert not seq_is_rowid(path)
    assert await chain_ok(url) == (True, 10)


def test_a_store_behind_the_latest_migration_is_named(tmp_path: Path) -> None:
    path = tmp_path / "behind.db"
    url = f"sqlite:///{path}"
    assert schema_behind(url) is None  # no store: nothing to say, and no file made
    assert not path.exists()
    upgrade(url, "0003")
    behind = schema_behind(url)
    assert behind is not None
    assert behind[0] == "0003"
    assert behind[1] > "0003"  # the latest, whatever it is by then
    upgrade(url)
    assert schema_behind(url) is None
