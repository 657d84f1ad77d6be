"""The SQLite committer's temporary storage: in memory for write sets, on disk for jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import PutResource, WriteResult, WriteSet
from openspine.platform.storage.sqlite_commit import Committer

FILE, MEMORY = 1, 2  # PRAGMA temp_store's answers


def temp_store(conn: sqlite3.Connection, _cursor: ChainCursor | None = None) -> int:
    return int(conn.execute("PRAGMA temp_store").fetchone()[0])


def test_write_sets_journal_in_memory_and_jobs_sort_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "commit.db"
    upgrade(f"sqlite:///{path}")
    committer = Committer(path, synchronous="FULL")
    try:
        assert temp_store(committer._conn) == MEMORY
        # Write sets whose savepoints journal well past SQLite's 64 KiB spill size.
        big = [
            WriteSet(puts=[PutResource("Thing", f"t{n}", 1, b"x" * 20_000, None)])
            for n in range(20)
        ]
        outcomes = committer.commit(big)
        assert all(isinstance(outcome, WriteResult) for outcome in outcomes)

        # A bulk load's merge sorts more than memory should hold: its batch sorts on disk.
        assert committer.commit([temp_store]) == [FILE]
        assert temp_store(committer._conn) == MEMORY  # and write sets are back in memory
    finally:
        committer.close()
