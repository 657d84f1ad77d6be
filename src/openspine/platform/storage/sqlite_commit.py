"""SQLite group commit: one batch of write sets in one transaction, under the writer lock.

A :class:`Committer` owns a store file's writer connection and an exclusive ``flock`` on
``<store>.writer-lock``. It applies a batch inside one ``BEGIN IMMEDIATE`` transaction: each
write set in its own SAVEPOINT, so a failing one rolls back alone; a read's audit-only write set
cannot fail alone, so the batch's read audit rows go in with one ``executemany`` (ADR 0013). It
commits once (fsync with ``synchronous=FULL``) and returns one outcome per job: a
:class:`WriteResult`, the job's own result, or the :class:`StoreError` that refused it.

A batch's savepoints keep the pages they change in SQLite's statement journal, which spills from
memory to a temporary file past 64 KiB: with ``temp_store = FILE`` nearly every batch created,
unlinked and closed a file, an inode allocated and evicted each time (the writer's kernel time
fell from 27-30 % to 17-20 % of a core without it, ADR 0022). The writer connection keeps
temporary storage in memory, except for a batch of exclusive jobs: a bulk load's merge sorts
more keys than memory should hold, and SQLite's sorter spills to files only where temporary
storage is on disk.

Whoever holds a committer takes turns with every other one on the same file through the lock,
which the kernel hands to the next waiter as soon as it is released; ``BEGIN IMMEDIATE`` alone
would leave a waiting writer in SQLite's busy handler, which sleeps in steps of up to 100 ms
(ADR 0014). The in-process writer thread of :mod:`.sqlite` and the writer process of
:mod:`.sqlite_writer` (ADR 0015) both commit through one.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from openspine.platform.storage import batching
from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.file_sync import sync_file_systems
from openspine.platform.storage.ports import (
    AlreadyExists,
    IdempotencyKeyTaken,
    NonceReplayed,
    PutResource,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    WriteResult,
    WriteSet,
)
from openspine.platform.storage.sql import SQL

__all__ = ["Committer", "Job", "connect"]

#: A write set, or an exclusive job (bulk load, index merge) run inside its own savepoint.
Job = WriteSet | Callable[[sqlite3.Connection, ChainCursor], Any]

_NONCE_PURGE_EVERY = 1000
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
#: Page cache per connection (KiB): index inserts and range scans stay in memory.
_CACHE_KIB = 256 * 1024
#: Helper threads SQLite's sorter may use for a large ORDER BY or CREATE INDEX (ADR 0014).
_SORTER_THREADS = 2
#: Temporary storage of the writer connection: in memory for write sets, on disk for exclusive
#: jobs (see the module's docstring).
_TEMP_IN_MEMORY = "PRAGMA temp_store = MEMORY"
_TEMP_ON_DISK = "PRAGMA temp_store = FILE"


def connect(path: Path, *, synchronous: str, read_only: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    conn.execute(f"PRAGMA threads = {_SORTER_THREADS}")
    if read_only:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
    return conn


class Committer:
    """The writer connection of one store file; not thread-safe (one writer thread uses it)."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self._conn = connect(path, synchronous=synchronous, read_only=False)
        self._conn.execute(_TEMP_IN_MEMORY)
        try:
            self._lock = os.open(path.with_name(path.name + ".writer-lock"), _LOCK_FLAGS, 0o600)
        except OSError:
            self._conn.close()
            raise
        self._batches = 0
        self._sync_thread: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._sync_thread is not None:
            self._sync_thread.shutdown()
        os.close(self._lock)
        self._conn.close()

    def commit(self, jobs: Sequence[Job]) -> list[object]:
        """Apply ``jobs`` in one transaction; one outcome per job, in order."""
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # blocks without the GIL
        sorts = not all(isinstance(job, WriteSet) for job in jobs)
        try:
            if sorts:  # set outside a transaction: SQLite refuses to change it inside one
                self._conn.execute(_TEMP_ON_DISK)
            return self._run_batch(jobs)
        finally:
            if sorts:
                self._conn.execute(_TEMP_IN_MEMORY)
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _run_batch(self, jobs: Sequence[Job]) -> list[object]:
        conn = self._conn
        results: list[object] = []
        sync_dirs = [d for job in jobs if isinstance(job, WriteSet) for d in job.sync_dirs]
        # Files the batch's records name must be durable before the records are. Their sync
        # runs while the batch is applied, and COMMIT waits for it (ADR 0017): until COMMIT
        # nothing of the batch can survive a crash, so only the COMMIT has to come after it.
        synced = self._syncer().submit(sync_file_systems, sync_dirs) if sync_dirs else None
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(SQL.AUDIT_HEAD).fetchone()
            cursor = ChainCursor(int(head[0]), str(head[1]))
            start = cursor.mark()
            read_audit: list[tuple[int, str, str, bytes, str, str]] = []
            for job in jobs:
                if isinstance(job, WriteSet) and job.is_audit_only():
                    # A read's audit event: no condition can fail, so no savepoint; the rows
                    # of the whole batch go in with one executemany below.
                    rows = [cursor.link(record) for record in job.audit]
                    read_audit.extend(rows)
                    results.append(WriteResult(tuple(row[0] for row in rows)))
                    continue
                mark = cursor.mark()
                conn.execute("SAVEPOINT ws")
                try:
                    if isinstance(job, WriteSet):
                        outcome: object = self._apply(job, cursor)
                    else:
                        outcome = job(conn, cursor)
                    conn.execute("RELEASE ws")
                except (StoreError, sqlite3.IntegrityError) as exc:
                    conn.execute("ROLLBACK TO ws")
                    conn.execute("RELEASE ws")
                    cursor.rewind(mark)
                    outcome = exc if isinstance(exc, StoreError) else AlreadyExists(str(exc))
                results.append(outcome)
            if read_audit:
                conn.executemany(SQL.AUDIT_INSERT, read_audit)
            if cursor.mark() != start:
                conn.execute(SQL.AUDIT_HEAD_SET, cursor.mark())
            self._batches += 1
            if self._batches % _NONCE_PURGE_EVERY == 0:
                conn.execute(SQL.NONCE_PURGE, (int(time.time()),))
            if synced is not None:
                synced.result()  # raises what the sync raised: the whole batch is refused
            conn.execute("COMMIT")
        except Exception as exc:  # every waiting request must be answered, whatever failed
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable("the store refused the transaction")
            failure.__cause__ = exc
            results = [failure] * len(jobs)
        finally:
            if synced is not None:
                futures.wait([synced])  # never two syncs in flight
        return results

    def _syncer(self) -> ThreadPoolExecutor:
        """The thread that syncs a batch's files while the batch is applied (made on first use)."""
        if self._sync_thread is None:
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="openspine-file-sync")
        return self._sync_thread

    def _apply(self, ws: WriteSet, cursor: ChainCursor) -> WriteResult:
        conn = self._conn
        now = batching.now()
        if ws.idempotency is not None:
            rec = ws.idempotency
            try:
                conn.execute(SQL.IDEMPOTENCY_INSERT, batching.idempotency_row(rec, now))
            except sqlite3.IntegrityError as exc:
                raise IdempotencyKeyTaken(rec.request_id) from exc
        for nonce in ws.nonces:
            try:
                conn.execute(SQL.NONCE_INSERT, (nonce.issuer, nonce.value, nonce.expires_at))
            except sqlite3.IntegrityError as exc:
                raise NonceReplayed(nonce.issuer) from exc
        for put in ws.puts:
            _put(conn, put, now)
        seqs = []
        for record in ws.audit:
            row = cursor.link(record)
            conn.execute(SQL.AUDIT_INSERT, row)
            seqs.append(row[0])
        for message in ws.outbox:
            conn.execute(SQL.OUTBOX_INSERT, (message.topic, message.key, message.payload, now))
        return WriteResult(tuple(seqs))


def _put(conn: sqlite3.Connection, put: PutResource, now: str) -> None:
    if put.expected_version is None:
        try:
            conn.execute(SQL.INSERT, batching.insert_row(put, now))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"{put.resource_type}/{put.id}") from exc
        if put.search_keys:  # a new resource has no keys yet: nothing to look up or delete
            conn.executemany(SQL.INDEX_INSERT, batching.index_rows(put))
        return
    previous = conn.execute(SQL.GET_FOR_UPDATE, (put.resource_type, put.id)).fetchone()
    if previous is None or previous[0] != put.expected_version:
        raise VersionConflict(f"{put.resource_type}/{put.id}")
    version, body, keys = previous
    if put.keep_history:
        conn.execute(SQL.HISTORY, (put.resource_type, put.id, version, body, now))
    conn.execute(SQL.UPDATE, batching.update_row(put, now, keys))
    if put.search_keys is not None:  # the keys it had are in its row (migration 0006)
        gone, new = batching.index_changes(put, batching.stored_keys(keys))
        conn.executemany(SQL.INDEX_DELETE_KEY, gone)
        conn.executemany(SQL.INDEX_INSERT, new)
