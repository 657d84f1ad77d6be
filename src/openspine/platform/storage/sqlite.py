"""SQLite adapter: stdlib driver, WAL, synchronous point reads, group-committed writes.

Reads run on the caller's thread with a per-thread read-only connection (a point read is about
10 µs, cheaper than any thread hop). Writes are group-committed (:mod:`.sqlite_commit`): each
write set in its own SAVEPOINT of one ``BEGIN IMMEDIATE`` transaction, one COMMIT (fsync with
``synchronous=FULL``) per batch, and only then the answer.

Who commits: with ``writer_socket`` (``openspine serve`` sets it), write sets go to the one
writer process of :mod:`.sqlite_writer`, which batches every worker's writes together (ADR 0015).
Without it, and for exclusive jobs (bulk load, index merge), or while the link to the writer
process has failed (it is tried again every ``RELINK_SECONDS``: ``openspine serve`` restarts a
writer process that died), this process's own writer thread commits, taking everything queued (up to
``max_batch``) and waking each event loop once per batch. All of them take turns through the
store's writer lock, so any number of processes may write one file (ADR 0014).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from openspine.platform.storage import batching
from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.leases import FileLeases
from openspine.platform.storage.ports import (
    AuditChain,
    AuditRecord,
    AuditRow,
    IdempotencyRecord,
    PutResource,
    ResourceState,
    StoredResource,
    StoreUnavailable,
    WriteResult,
    WriteSet,
)
from openspine.platform.storage.sql import SQL
from openspine.platform.storage.sqlite_access import open_access
from openspine.platform.storage.sqlite_commit import Committer, connect
from openspine.platform.storage.sqlite_writer import WriterLink, WriterUnreachable

__all__ = ["SqliteStore"]

T = TypeVar("T")
_STOP = object()


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

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_batch: int = 512,
        writer_socket: Path | None = None,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._writer: threading.Thread | None = None
        self._link = WriterLink(writer_socket) if writer_socket is not None else None
        self._leases = FileLeases(path)

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
        self._leases.release_all()
        if self._link is not None:
            self._link.close()
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    async def lead(self, duty: str) -> bool:
        return self._leases.lead(duty)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, synchronous=self._synchronous, read_only=True)
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

    async def audit_rows(
        self, chain: AuditChain = AuditChain.MAIN, batch_size: int = 5000
    ) -> AsyncIterator[AuditRow]:
        after = 0
        query = SQL.AUDIT_ROWS if chain is AuditChain.MAIN else SQL.ACCESS_ROWS
        with self._chain_reader(chain) as conn:
            while True:
                rows = conn.execute(query, (after, batch_size)).fetchall()
                if not rows:
                    return
                for seq, event_id, recorded_at, payload, prev_hash, hash_ in rows:
                    if not isinstance(payload, bytes):  # a value rewritten as text by hand
                        payload = str(payload).encode()
                    yield AuditRow(seq, event_id, recorded_at, payload, prev_hash, hash_)
                after = rows[-1][0]

    async def audit_head(self, chain: AuditChain = AuditChain.MAIN) -> tuple[int, str]:
        with self._chain_reader(chain) as conn:
            query = SQL.AUDIT_HEAD if chain is AuditChain.MAIN else SQL.ACCESS_HEAD
            row = conn.execute(query).fetchone()
        return int(row[0]), str(row[1])

    @contextlib.contextmanager
    def _chain_reader(self, chain: AuditChain) -> Iterator[sqlite3.Connection]:
        """This thread's reader for ``main``; a connection of its own to the access file for
        ``access`` (read rarely: by ``openspine audit verify``)."""
        if chain is AuditChain.MAIN:
            yield self._reader()
            return
        try:
            conn = open_access(self._path, read_only=True)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable("the store's access file cannot be opened") from exc
        try:
            yield conn
        finally:
            conn.close()

    # -- writes --------------------------------------------------------------------------------

    @property
    def writes_through_writer_process(self) -> bool:
        """True while write sets go to the writer process (False: this process's own thread)."""
        return self._link is not None and not self._link.failed

    async def write(self, writes: WriteSet) -> WriteResult:
        if self._link is not None:
            if self._link.relink_due():  # the writer process may have been started again
                self._link.relink()
            if not self._link.failed:
                try:
                    return await self._link.write(writes)
                except WriterUnreachable:
                    pass  # nothing was sent: this process's own writer takes it
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._queue.put((writes, asyncio.get_running_loop(), future))
        return await future

    async def bulk_load(
        self, resources: Iterable[PutResource], audit: AuditRecord, *, index_later: bool = False
    ) -> int:
        resources = list(resources)
        at = batching.now()
        rows = [batching.insert_row(r, at) for r in resources]
        keys = [key for r in resources for key in batching.index_rows(r)]
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
            conn.execute(SQL.INDEX_PENDING_MERGE)
            conn.execute(SQL.INDEX_PENDING_CLEAR)
            return pending

        return await self._exclusive(merge)

    async def _exclusive(self, job: Callable[[sqlite3.Connection, ChainCursor], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((job, asyncio.get_running_loop(), future))
        return await future

    # -- the writer thread ---------------------------------------------------------------------

    def _writer_main(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            committer = Committer(self._path, synchronous=self._synchronous)
        except (sqlite3.Error, OSError) as exc:
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
                outcomes = committer.commit([job for job, _loop, _future in batch])
                # One wake-up of each event loop per batch, not one per request: every
                # call_soon_threadsafe writes to the loop's self-pipe.
                by_loop: dict[
                    asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]
                ] = {}
                for (_job, loop, future), outcome in zip(batch, outcomes, strict=True):
                    by_loop.setdefault(loop, []).append((future, outcome))
                for loop, settled in by_loop.items():
                    loop.call_soon_threadsafe(_settle_all, settled)
        finally:
            committer.close()
