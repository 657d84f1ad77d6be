"""The SQLite committer: its temporary storage (in memory for write sets, on disk for jobs), and
its two files (the data file, and the access file of the ``access`` audit chain; ADR 0025)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import (
    PutResource,
    StoreUnavailable,
    WriteResult,
    WriteSet,
)
from openspine.platform.storage.sqlite_access import access_path
from openspine.platform.storage.sqlite_commit import Committer
from tests.contract.storage.records import audit_event

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


def _batch(n: int) -> list[WriteSet]:
    """Reads' events alone and changes with theirs, interleaved."""
    changed = [PutResource("Thing", f"{n}-{i}", 1, b"{}", None) for i in range(6)]
    return [WriteSet(puts=[] if i % 2 else [changed[i]], audit=[audit_event()]) for i in range(6)]


def test_a_batch_answers_each_file_for_its_own_write_sets(tmp_path: Path) -> None:
    path = tmp_path / "commit.db"
    upgrade(f"sqlite:///{path}")
    committer = Committer(path, synchronous="FULL")
    try:
        outcomes = committer.commit(_batch(1))
        seqs = [outcome.audit_seqs for outcome in outcomes if isinstance(outcome, WriteResult)]
        assert seqs == [(1,), (1,), (2,), (2,), (3,), (3,)]  # main, access, main, access, ...
        reads = committer.commit(_batch(2)[1::2])  # reads alone: the access file only
        assert reads == [WriteResult((4,)), WriteResult((5,)), WriteResult((6,))]
        with sqlite3.connect(path) as data:
            (changes,) = data.execute("SELECT count(*) FROM audit_events").fetchone()
        data.close()
        assert changes == 3  # the reads' events are not in the data file
    finally:
        committer.close()


def test_without_its_access_file_only_the_reads_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "commit.db"
    upgrade(f"sqlite:///{path}")
    access_path(path).unlink()
    committer = Committer(path, synchronous="FULL")
    try:
        outcomes = committer.commit(_batch(1))
        assert [type(outcome) for outcome in outcomes] == [WriteResult, StoreUnavailable] * 3
        assert not access_path(path).exists()  # never made again: its chain would restart
    finally:
        committer.close()
