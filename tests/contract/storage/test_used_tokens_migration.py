"""Migration 0005 on both stores: used tokens keyed by expiry first, and still single-use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from openspine.platform.storage.factory import open_store
from openspine.platform.storage.migrate import downgrade, upgrade
from openspine.platform.storage.ports import ConsumeNonce, NonceReplayed, WriteSet
from tests.postgres import empty_store

pytestmark = pytest.mark.anyio

USED = ConsumeNonce("mesh:ALICE", "nonce-1:1", 2_000_000_000)


def key_columns(url: str) -> list[str]:
    """The used-token table's primary key, in key order."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT name, pk FROM pragma_table_info('used_nonces')").fetchall()
        conn.close()
        return [name for name, pk in sorted(rows, key=lambda r: r[1]) if pk]
    import psycopg

    with psycopg.connect(url) as pg:
        rows = pg.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'used_nonces'::regclass"
            " AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)"
        ).fetchall()
    return [name for (name,) in rows]


async def consume(url: str, nonce: ConsumeNonce) -> None:
    store = open_store(url, max_batch=16)
    await store.start()
    try:
        await store.write(WriteSet(nonces=[nonce]))
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_token_used_before_the_upgrade_stays_used(kind: str, tmp_path: Path) -> None:
    with empty_store(kind, tmp_path, "tokens") as url:
        upgrade(url, "0004")
        assert key_columns(url) == ["issuer", "value"]
        await consume(url, USED)

        upgrade(url)

        assert key_columns(url) == ["expires_at", "issuer", "value"]
        with pytest.raises(NonceReplayed):
            await consume(url, USED)
        await consume(url, ConsumeNonce("mesh:ALICE", "nonce-1:2", 2_000_000_000))

        downgrade(url, "0004")  # and back: the old key, the tokens kept

        assert key_columns(url) == ["issuer", "value"]
        with pytest.raises(NonceReplayed):
            await consume(url, USED)


async def test_on_sqlite_the_table_is_its_key_alone(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'used_nonces'").fetchone()
        indexes = conn.execute("PRAGMA index_list(used_nonces)").fetchall()
    conn.close()
    assert sql.endswith("WITHOUT ROWID")
    assert [row[1] for row in indexes] == ["sqlite_autoindex_used_nonces_1"]  # the key itself
