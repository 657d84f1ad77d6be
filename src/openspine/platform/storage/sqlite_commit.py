"""SQLite group commit: one batch of write sets in one transaction, under the writer lock.

A :class:`Committer` owns a store file's writer connections and an exclusive ``flock`` on
``<store>.writer-lock``. It applies a batch's changes inside one ``BEGIN IMMEDIATE`` transaction:
each write set in its own SAVEPOINT, so a failing one rolls back alone. It commits once (fsync
with ``synchronous=FULL``) and returns one outcome per job: a :class:`WriteResult`, the job's own
result, or the :class:`StoreError` that refused it.

A batch's savepoints keep the pages they change in SQLite's statement journal, which spills from
memory to a temporary file past 64 KiB: with ``temp_store = FILE`` nearly every batch created,
unlinked and closed a file, an inode allocated and evicted each time (the writer's kernel time
fell from 27-30 % to 17-20 % of a core without it, ADR 0022). The writer connection keeps
temporary storage in memory, except for a batch of exclusive jobs: a bulk load's merge sorts
more keys than memory should hold, and SQLite's sorter spills to files only where temporary
storage is on disk.

Events of write sets with nothing else in them (a read's) cannot fail alone: the batch's rows go
in with one ``executemany`` (ADR 0013), to the ``access`` chain in the store's access file
(:mod:`.sqlite_access`, ADR 0025), so that the data file changes only when data does: every
commit to it empties every reader's page cache. A batch of such events alone commits only the
access file; a batch with changes too commits the access file on a thread of its own while the
changes are applied and committed, and answers when both are durable.

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
from typing import Any, Literal

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
from openspine.platform.storage.sqlite_access import access_path, open_access

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
    """The writer connections of one store (its data file and its access file); not
    thread-safe (one writer thread uses it, and waits for the access file's own thread)."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        #: The access file's connection, opened with the first batch of events alone.
        self._access: sqlite3.Connection | None = None
        self._conn = connect(path, synchronous=synchronous, read_only=False)
        self._conn.execute(_TEMP_IN_MEMORY)
        try:
            self._lock = os.open(path.with_name(path.name + ".writer-lock"), _LOCK_FLAGS, 0o600)
        except OSError:
            self._conn.close()
            raise
        self._batches = 0
        #: One thread per purpose, made on first use (see :meth:`_thread`).
        self._threads: dict[str, ThreadPoolExecutor] = {}

    def close(self) -> None:
        for thread in self._threads.values():
            thread.shutdown()
        os.close(self._lock)
        self._conn.close()
        if self._access is not None:
            self._access.close()

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
        reads: list[int] = []
        changes: list[int] = []
        for i, job in enumerate(jobs):
            (reads if isinstance(job, WriteSet) and job.is_audit_only() else changes).append(i)
        events = [job for i in reads if isinstance(job := jobs[i], WriteSet)]
        outcomes: list[object] = [None] * len(jobs)
        if not changes:
            for i, outcome in zip(reads, self._commit_access(events), strict=True):
                outcomes[i] = outcome
            return outcomes
        # Both files: their syncs overlap, the access file's on its own thread (ADR 0025).
        access = self._thread("access").submit(self._commit_access, events) if events else None
        try:
            committed = self._commit_changes([jobs[i] for i in changes])
            for i, outcome in zip(changes, committed, strict=True):
                outcomes[i] = outcome
        finally:
            if access is not None:  # never two access commits in flight
                for i, outcome in zip(reads, access.result(), strict=True):
                    outcomes[i] = outcome
        return outcomes

    def _commit_access(self, jobs: Sequence[WriteSet]) -> list[object]:
        """Append the events of ``jobs`` to the access chain in one transaction of the access
        file; one outcome per job. Nothing in them can fail alone: one ``executemany``."""
        if not any(job.audit for job in jobs):
            return [WriteResult(()) for _ in jobs]
        rows: list[batching.ChainedRow] = []
        try:
            conn = self._access_file()
        except StoreUnavailable as exc:
            return [exc] * len(jobs)
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(SQL.ACCESS_HEAD).fetchone()
            cursor = ChainCursor(int(head[0]), str(head[1]))
            results: list[object] = [batching.link_events(cursor, job, rows) for job in jobs]
            conn.executemany(SQL.ACCESS_INSERT, rows)
            conn.execute(SQL.ACCESS_HEAD_SET, cursor.mark())
            conn.execute("COMMIT")
        except Exception as exc:  # every waiting request must be answered, whatever failed
            return _refused(conn, exc, len(jobs))
        return results

    def _access_file(self) -> sqlite3.Connection:
        """The access file's connection. A store older than migration 0007 has none; the file
        is never made here, where an access chain lost would silently start again."""
        if self._access is None:
            conn: sqlite3.Connection | None = None
            try:
                conn = open_access(self._path, read_only=False)
                conn.execute("PRAGMA busy_timeout = 10000")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StoreUnavailable(
                    f"the store's access file {access_path(self._path).name} is missing or"
                    " unreadable: run `openspine migrate` on a store older than 0007"
                ) from exc
            self._access = conn
        return self._access

    def _commit_changes(self, jobs: Sequence[Job]) -> list[object]:
        """Apply ``jobs`` (none of them events alone) in one transaction of the data file."""
        conn = self._conn
        results: list[object] = []
        sync_dirs = [d for job in jobs if isinstance(job, WriteSet) for d in job.sync_dirs]
        # Files the batch's records name must be durable before the records are. Their sync
        # runs while the batch is applied, and COMMIT waits for it (ADR 0017): until COMMIT
        # nothing of the batch can survive a crash, so only the COMMIT has to come after it.
        synced = None
        if sync_dirs:
            synced = self._thread("file-sync").submit(sync_file_systems, sync_dirs)
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(SQL.AUDIT_HEAD).fetchone()
            cursor = ChainCursor(int(head[0]), str(head[1]))
            start = cursor.mark()
            for job in jobs:
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
            if cursor.mark() != start:
                conn.execute(SQL.AUDIT_HEAD_SET, cursor.mark())
            self._batches += 1
            if self._batches % _NONCE_PURGE_EVERY == 0:
                conn.execute(SQL.NONCE_PURGE, (int(time.time()),))
            if synced is not None:
                synced.result()  # raises what the sync raised: the whole batch is refused
            conn.execute("COMMIT")
        except Exception as exc:  # every waiting request must be answered, whatever failed
            results = _refused(conn, exc, len(jobs))
        finally:
            if synced is not None:
                futures.wait([synced])  # never two syncs in flight
        return results

    def _thread(self, purpose: Literal["file-sync", "access"]) -> ThreadPoolExecutor:
        """The thread that syncs a batch's files while the batch is applied (``file-sync``), or
        that commits the access file while the data file commits (``access``)."""
        thread = self._threads.get(purpose)
        if thread is None:
            thread = ThreadPoolExecutor(1, thread_name_prefix=f"openspine-{purpose}")
            self._threads[purpose] = thread
        return thread

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


def _refused(conn: sqlite3.Connection, cause: Exception, count: int) -> list[object]:
    """Roll back what a failed transaction left open; one refusal for each of ``count`` jobs."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    failure = StoreUnavailable("the store refused the transaction")
    failure.__cause__ = cause
    return [failure] * count


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
