"""SQLite adapter: stdlib driver, WAL, synchronous point reads, one group-commit writer thread.

Reads run on the caller's thread with a per-thread read-only connection (a point read is about
10 µs, cheaper than any thread hop). Writes are queued to one writer thread per process, which
takes everything waiting (up to ``max_batch``), applies each write set inside its own SAVEPOINT
of one ``BEGIN IMMEDIATE`` transaction, commits once (fsync with ``synchronous=FULL``) and only
then answers every waiting request, waking each event loop once per batch. A write set that
fails rolls back to its savepoint alone; a read's audit-only write set cannot fail alone, so it
needs no savepoint, and the batch's read audit rows go in with one ``executemany`` (ADR 0013).
Several processes may share the file (``openspine serve --workers N``): their writers take
turns through an exclusive ``flock`` on ``<store>.writer-lock``, which the kernel hands to the
next waiter as soon as it is released; ``BEGIN IMMEDIATE`` alone would leave a waiting writer
in SQLite's busy handler, which sleeps in steps of up to 100 ms (ADR 0014).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.ports import (
    AlreadyExists,
    AuditRecord,
    AuditRow,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    NonceReplayed,
    PutResource,
    ResourceState,
    StoredResource,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    WriteResult,
    WriteSet,
)
from openspine.platform.storage.sql import SQL

__all__ = ["SqliteStore"]

T = TypeVar("T")
_STOP = object()
_NONCE_PURGE_EVERY = 1000
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


#: Page cache per connection (KiB): index inserts and range scans stay in memory.
_CACHE_KIB = 256 * 1024
#: Helper threads SQLite's sorter may use for a large ORDER BY or CREATE INDEX (ADR 0014).
_SORTER_THREADS = 2


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _settle(future: asyncio.Future[Any], result: object) -> None:
    if future.cancelled():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, result in outcomes:
        _settle(future, result)


class SqliteStore:
    """The embedded store; ``path`` is the database file (created by the migrations)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", max_batch: int = 512) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._writer: threading.Thread | None = None
        self._batches = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._path.exists():
            raise StoreUnavailable("the store has not been created; run `openspine migrate`")
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._writer_main, args=(ready,), name="openspine-sqlite-writer", daemon=True
        )
        self._writer.start()
        failure = await asyncio.to_thread(ready.get)
        if failure is not None:
            raise StoreUnavailable("the writer could not open the store") from failure

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        conn.execute(f"PRAGMA threads = {_SORTER_THREADS}")
        if read_only:
            conn.execute("PRAGMA query_only = 1")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(read_only=True)
            self._local.conn = conn
        return conn

    # -- reads ---------------------------------------------------------------------------------

    async def ping(self) -> None:
        try:
            self._reader().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable("store did not answer") from exc

    async def get(self, resource_type: str, resource_id: str) -> StoredResource | None:
        try:
            row = self._reader().execute(SQL.GET, (resource_type, resource_id)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable("read failed") from exc
        if row is None:
            return None
        return StoredResource(resource_type, resource_id, row[0], ResourceState(row[1]), *row[2:])

    async def get_many(
        self, resource_type: str, resource_ids: Sequence[str]
    ) -> list[StoredResource]:
        found = []
        for resource_id in resource_ids:
            resource = await self.get(resource_type, resource_id)
            if resource is not None:
                found.append(resource)
        return found

    async def count(self, resource_type: str) -> int:
        row = self._reader().execute(SQL.COUNT, (resource_type,)).fetchone()
        return int(row[0])

    async def scan_index(
        self, resource_type: str, param: str, low: str, high: str, limit: int
    ) -> list[tuple[str, str]]:
        try:
            rows = (
                self._reader()
                .execute(SQL.INDEX_SCAN, (resource_type, param, low, high, limit))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable("read failed") from exc
        return [(str(r[0]), str(r[1])) for r in rows]

    async def get_idempotency(self, caller: str, request_id: str) -> IdempotencyRecord | None:
        try:
            row = self._reader().execute(SQL.IDEMPOTENCY_GET, (caller, request_id)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable("read failed") from exc
        if row is None:
            return None
        return IdempotencyRecord(caller, request_id, row[0], row[1], row[2], row[3])

    async def audit_rows(self, batch_size: int = 5000) -> AsyncIterator[AuditRow]:
        after = 0
        conn = self._reader()
        while True:
            rows = conn.execute(SQL.AUDIT_ROWS, (after, batch_size)).fetchall()
            if not rows:
                return
            for seq, event_id, recorded_at, payload, prev_hash, hash_ in rows:
                if not isinstance(payload, bytes):  # a value rewritten as text by hand
                    payload = str(payload).encode()
                yield AuditRow(seq, event_id, recorded_at, payload, prev_hash, hash_)
            after = rows[-1][0]

    async def audit_head(self) -> tuple[int, str]:
        row = self._reader().execute(SQL.AUDIT_HEAD).fetchone()
        return int(row[0]), str(row[1])

    # -- writes --------------------------------------------------------------------------------

    async def write(self, writes: WriteSet) -> WriteResult:
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._queue.put((writes, asyncio.get_running_loop(), future))
        return await future

    async def bulk_load(
        self, resources: Iterable[PutResource], audit: AuditRecord, *, index_later: bool = False
    ) -> int:
        resources = list(resources)
        rows = [
            (
                r.resource_type,
                r.id,
                r.version,
                r.state.value,
                r.body,
                r.restricted_body,
                r.successor_id,
                _now(),
            )
            for r in resources
        ]

        keys = [
            (r.resource_type, param, value, r.id)
            for r in resources
            for param, value in r.search_keys or ()
        ]
        insert_keys = SQL.INDEX_PENDING_INSERT if index_later else SQL.INDEX_INSERT

        def load(conn: sqlite3.Connection, cursor: ChainCursor) -> int:
            conn.executemany(SQL.INSERT, rows)
            conn.executemany(insert_keys, keys)
            conn.execute(SQL.AUDIT_INSERT, cursor.link(audit))
            return len(rows)

        return await self._exclusive(load)

    async def merge_pending_index(self) -> int:
        def merge(conn: sqlite3.Connection, cursor: ChainCursor) -> int:
            pending = int(conn.execute(SQL.INDEX_PENDING_COUNT).fetchone()[0])
            if pending == 0:
                return 0
            # Filling an empty index: its secondary index is built afterwards by one sort,
            # not kept up to date row by row in resource order (which is random).
            rebuild = bool(conn.execute(SQL.INDEX_IS_EMPTY).fetchone()[0])
            if rebuild:
                conn.execute(SQL.INDEX_BY_RESOURCE_DROP)
            conn.execute(SQL.INDEX_PENDING_MERGE)
            conn.execute(SQL.INDEX_PENDING_CLEAR)
            if rebuild:
                conn.execute(SQL.INDEX_BY_RESOURCE_CREATE)
            return pending

        return await self._exclusive(merge)

    async def _exclusive(self, job: Callable[[sqlite3.Connection, ChainCursor], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((job, asyncio.get_running_loop(), future))
        return await future

    # -- the writer thread ---------------------------------------------------------------------

    def _writer_main(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = self._connect(read_only=False)
        except sqlite3.Error as exc:
            ready.put(exc)
            return
        try:
            lock = os.open(
                self._path.with_name(self._path.name + ".writer-lock"), _LOCK_FLAGS, 0o600
            )
        except OSError as exc:
            conn.close()
            ready.put(exc)
            return
        ready.put(None)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(nxt)
                fcntl.flock(lock, fcntl.LOCK_EX)  # blocks without the GIL
                try:
                    self._run_batch(conn, batch)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            os.close(lock)
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[object] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(SQL.AUDIT_HEAD).fetchone()
            cursor = ChainCursor(int(head[0]), str(head[1]))
            start = cursor.mark()
            read_audit: list[tuple[int, str, str, bytes, str, str]] = []
            for job, _loop, _future in batch:
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
                        outcome: object = self._apply(conn, job, cursor)
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
            conn.execute("COMMIT")
        except Exception as exc:  # every waiting request must be answered, whatever failed
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable("the store refused the transaction")
            failure.__cause__ = exc
            results = [failure] * len(batch)
        # One wake-up of each event loop per batch, not one per request: every
        # call_soon_threadsafe writes to the loop's self-pipe.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
        for (_job, loop, future), outcome in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, outcomes in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, outcomes)

    def _apply(self, conn: sqlite3.Connection, ws: WriteSet, cursor: ChainCursor) -> WriteResult:
        now = _now()
        if ws.idempotency is not None:
            rec = ws.idempotency
            try:
                conn.execute(
                    SQL.IDEMPOTENCY_INSERT,
                    (
                        rec.caller,
                        rec.request_id,
                        rec.fingerprint,
                        rec.status,
                        rec.headers,
                        rec.body,
                        now,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise IdempotencyKeyTaken(rec.request_id) from exc
        for nonce in ws.nonces:
            try:
                conn.execute(SQL.NONCE_INSERT, (nonce.issuer, nonce.value, nonce.expires_at))
            except sqlite3.IntegrityError as exc:
                raise NonceReplayed(nonce.issuer) from exc
        for put in ws.puts:
            self._put(conn, put, now)
        seqs = []
        for record in ws.audit:
            row = cursor.link(record)
            conn.execute(SQL.AUDIT_INSERT, row)
            seqs.append(row[0])
        for message in ws.outbox:
            conn.execute(SQL.OUTBOX_INSERT, (message.topic, message.key, message.payload, now))
        return WriteResult(tuple(seqs))

    @staticmethod
    def _put(conn: sqlite3.Connection, put: PutResource, now: str) -> None:
        if put.expected_version is None:
            try:
                conn.execute(
                    SQL.INSERT,
                    (
                        put.resource_type,
                        put.id,
                        put.version,
                        put.state.value,
                        put.body,
                        put.restricted_body,
                        put.successor_id,
                        now,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"{put.resource_type}/{put.id}") from exc
        else:
            previous = conn.execute(SQL.GET, (put.resource_type, put.id)).fetchone()
            if previous is None or previous[0] != put.expected_version:
                raise VersionConflict(f"{put.resource_type}/{put.id}")
            conn.execute(SQL.HISTORY, (put.resource_type, put.id, previous[0], previous[2], now))
            conn.execute(
                SQL.UPDATE,
                (
                    put.version,
                    put.state.value,
                    put.body,
                    put.restricted_body,
                    put.successor_id,
                    now,
                    put.resource_type,
                    put.id,
                    put.expected_version,
                ),
            )
        if put.search_keys is not None:
            conn.execute(SQL.INDEX_DELETE, (put.resource_type, put.id))
            conn.executemany(
                SQL.INDEX_INSERT,
                [(put.resource_type, param, value, put.id) for param, value in put.search_keys],
            )
