"""Migration 0006 on both stores: each resource's search keys in its own row, and the index by
resource gone; an update then replaces exactly the keys the row names."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from openspine.platform.storage.factory import open_store
from openspine.platform.storage.migrate import downgrade, upgrade
from openspine.platform.storage.ports import PutResource, WriteSet
from tests.postgres import empty_store

pytestmark = pytest.mark.anyio

#: (id, keys in search_index, keys still pending from an unfinished bulk load)
RESOURCES = [
    ("p1", [("family", "SMITH"), ("birthdate", "1970-01-01")], []),
    ("p2", [], [("family", "JONES"), ("given", "ANN")]),
    ("p3", [], []),
]


def run(url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows, on a connection of its own (``?`` placeholders on both)."""
    found: list[list[tuple[Any, ...]]] = []
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            for sql, params in statements:
                found.append(conn.execute(sql, params).fetchall())
        conn.close()
        return found
    import psycopg

    with psycopg.connect(url) as pg:
        for sql, params in statements:
            cur = pg.execute(sql.replace("?", "%s"), params)
            found.append(cur.fetchall() if cur.description else [])
    return found


def written_at_0005(url: str) -> None:
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for rid, indexed, pending in RESOURCES:
        statements.append(
            (
                "INSERT INTO resources (resource_type, id, version, state, body, updated_at)"
                " VALUES ('Patient', ?, 1, 'active', ?, '2026-11-24T00:00:00Z')",
                (rid, b"{}"),
            )
        )
        for table, keys in (("search_index", indexed), ("search_index_pending", pending)):
            for param, value in keys:
                statements.append(
                    (
                        f"INSERT INTO {table} (resource_type, param, value, id)"
                        " VALUES ('Patient', ?, ?, ?)",
                        (param, value, rid),
                    )
                )
    run(url, statements)


def row_keys(url: str) -> dict[str, set[tuple[str, str]] | None]:
    (rows,) = run(url, [("SELECT id, index_keys FROM resources ORDER BY id", ())])
    return {
        rid: None if keys is None else {(p, v) for p, v in json.loads(keys)} for rid, keys in rows
    }


def index_names(url: str) -> set[str]:
    if url.startswith("sqlite"):
        sql = "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'search_index'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'search_index'"
    (rows,) = run(url, [(sql, ())])
    return {name for (name,) in rows}


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_the_keys_move_into_their_rows_and_updates_use_them(
    kind: str, tmp_path: Path
) -> None:
    with empty_store(kind, tmp_path, "index_keys") as url:
        upgrade(url, "0005")
        written_at_0005(url)
        assert "ix_search_index_resource" in index_names(url)

        upgrade(url)

        assert "ix_search_index_resource" not in index_names(url)
        assert row_keys(url) == {
            "p1": {("family", "SMITH"), ("birthdate", "1970-01-01")},
            "p2": {("family", "JONES"), ("given", "ANN")},
            "p3": None,
        }
        store = open_store(url, max_batch=16)
        await store.start()
        try:
            # p1 keeps its birth date and changes its name: one key goes, one comes.
            await store.write(
                WriteSet(
                    puts=[
                        PutResource(
                            "Patient",
                            "p1",
                            2,
                            b"{}",
                            1,
                            search_keys=(("family", "SMYTHE"), ("birthdate", "1970-01-01")),
                        )
                    ]
                )
            )
            # p3 changes without touching its keys (None): it keeps having none.
            await store.write(WriteSet(puts=[PutResource("Patient", "p3", 2, b"{}", 1)]))
            assert await store.merge_pending_index() == 2
            smiths = await store.scan_index("Patient", "family", "SMITH", "SMYTHE", 10)
        finally:
            await store.close()
        assert smiths == [("p1", "SMYTHE")]
        assert row_keys(url)["p1"] == {("family", "SMYTHE"), ("birthdate", "1970-01-01")}
        assert row_keys(url)["p3"] is None
        (keys,) = run(url, [("SELECT id, param, value FROM search_index ORDER BY id, param", ())])
        assert keys == [
            ("p1", "birthdate", "1970-01-01"),
            ("p1", "family", "SMYTHE"),
            ("p2", "family", "JONES"),
            ("p2", "given", "ANN"),
        ]

        downgrade(url, "0005")  # and back: the index by resource again, the column gone

        assert "ix_search_index_resource" in index_names(url)
        (columns,) = run(
            url,
            [
                (
                    "SELECT name FROM pragma_table_info('resources')"
                    if kind == "sqlite"
                    else "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'resources'",
                    (),
                )
            ],
        )
        assert "index_keys" not in {name for (name,) in columns}
