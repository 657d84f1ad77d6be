"""PostgreSQL adapter: psycopg 3 with an async pool and an async group-commit writer task.

The writer takes every waiting write set (up to ``max_batch``), applies each inside a savepoint
of one transaction, commits once and answers them all. The head row of each audit chain the batch
appends to is locked (``SELECT … FOR UPDATE``, ``main`` before ``access``) for the batch, so API
nodes on many machines append the same two chains (ADR 0025): write sets of nothing but events
(reads) go to ``access`` with one ``executemany``, the others' events to ``main``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from openspine.platform.storage import batching
from openspine.platform.storage.batching import ChainCursor
from openspine.platform.storage.file_sync import sync_file_systems
from openspine.platform.storage.ports import (
    AlreadyExists,
    AuditChain,
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
from openspine.platform.storage.postgres_leases import AdvisoryLeases
from openspine.platform.storage.postgres_sessions import guarded_conninfo
from openspine.platform.storage.sql import SQL, for_postgres

__all__ = ["PostgresStore"]

_NONCE_PURGE_EVERY = 1000


class _Q:
    GET = for_postgres(SQL.GET)
    GET_FOR_UPDATE = for_postgres(SQL.GET_FOR_UPDATE)
    COUNT = for_postgres(SQL.COUNT)
    INSERT = for_postgres(SQL.INSERT)
    UPDATE = for_postgres(SQL.UPDATE)
    HISTORY = for_postgres(SQL.HISTORY)
    INDEX_DELETE_KEY = for_postgres(SQL.INDEX_DELETE_KEY)
    INDEX_INSERT = for_postgres(SQL.INDEX_INSERT)
    INDEX_SCAN = for_postgres(SQL.INDEX_SCAN)
    AUDIT_HEAD_LOCK = SQL.AUDIT_HEAD + " FOR UPDATE"
    AUDIT_HEAD = SQL.AUDIT_HEAD
    AUDIT_HEAD_SET = for_postgres(SQL.AUDIT_HEAD_SET)
    AUDIT_INSERT = for_postgres(SQL.AUDIT_INSERT)
    AUDIT_ROWS = for_postgres(SQL.AUDIT_ROWS)
    ACCESS_HEAD_LOCK = SQL.ACCESS_HEAD + " FOR UPDATE"
    ACCESS_HEAD = SQL.ACCESS_HEAD
    ACCESS_HEAD_SET = for_postgres(SQL.ACCESS_HEAD_SET)
    ACCESS_INSERT = for_postgres(SQL.ACCESS_INSERT)
    ACCESS_ROWS = for_postgres(SQL.ACCESS_ROWS)
    OUTBOX_INSERT = for_postgres(SQL.OUTBOX_INSERT)
    NONCE_INSERT = for_postgres(SQL.NONCE_INSERT)
    NONCE_PURGE = for_postgres(SQL.NONCE_PURGE)
    IDEMPOTENCY_INSERT = for_postgres(SQL.IDEMPOTENCY_INSERT)
    IDEMPOTENCY_GET = for_postgres(SQL.IDEMPOTENCY_GET)
    INDEX_PENDING_COUNT = SQL.INDEX_PENDING_COUNT
    INDEX_PENDING_MERGE = SQL.INDEX_PENDING_MERGE
    INDEX_PENDING_CLEAR = SQL.INDEX_PENDING_CLEAR


async def _head(conn: psycopg.AsyncConnection[Any], lock: str) -> ChainCursor:
    """A chain's head, locked until the transaction ends (``lock``: its ``FOR UPDATE`` query)."""
    cur = await conn.execute(lock)
    head = await cur.fetchone()
    assert head is not None, "migrations 0001 and 0007 create the head rows"
    return ChainCursor(int(head[0]), str(head[1]))


@dataclass(frozen=True, slots=True)
class _BulkLoad:
    resources: list[PutResource]
    audit: AuditRecord
    index_later: bool


#: The writer job that merges pending search keys (``merge_pending_index``).
_MERGE_PENDING = object()


#: How long a request may wait for a database connection before it is answered 503.
_CONNECT_TIMEOUT_S = 3


class PostgresStore:
    def __init__(self, url: str, *, max_batch: int = 512, pool_size: int = 8) -> None:
        self._pool = AsyncConnectionPool(
            guarded_conninfo(url),  # a node gone silent lets go of its locks (ADR 0026)
            min_size=2,
            max_size=max(2, pool_size),
            open=False,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            # A request waits this long for a connection, then is answered 503 (not left
            # hanging while PostgreSQL is away); the pool reconnects in the background.
            timeout=_CONNECT_TIMEOUT_S,
        )
        self._leases = AdvisoryLeases(url)
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._batches = 0

    async def start(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=10)
        except psycopg.Error as exc:
            raise StoreUnavailable("cannot connect to PostgreSQL") from exc
        except Exception as exc:  # psycopg_pool.PoolTimeout is not a psycopg.Error
            raise StoreUnavailable("cannot connect to PostgreSQL") from exc
        self._writer = asyncio.create_task(self._writer_main(), name="openspine-pg-writer")

    async def close(self) -> None:
        await self._leases.release_all()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self._pool.close()

    async def _fetchone(self, query: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailable("read failed") from exc

    async def ping(self) -> None:
        await self._fetchone("SELECT 1", ())

    async def get(self, resource_type: str, resource_id: str) -> StoredResource | None:
        row = await self._fetchone(_Q.GET, (resource_type, resource_id))
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
        row = await self._fetchone(_Q.COUNT, (resource_type,))
        return int(row[0]) if row else 0

    async def scan_index(
        self, resource_type: str, param: str, low: str, high: str, limit: int
    ) -> list[tuple[str, str]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_Q.INDEX_SCAN, (resource_type, param, low, high, limit))
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise StoreUnavailable("read failed") from exc
        return [(str(r[0]), str(r[1])) for r in rows]

    async def get_idempotency(self, caller: str, request_id: str) -> IdempotencyRecord | None:
        row = await self._fetchone(_Q.IDEMPOTENCY_GET, (caller, request_id))
        if row is None:
            return None
        return IdempotencyRecord(caller, request_id, row[0], row[1], bytes(row[2]), bytes(row[3]))

    async def lead(self, duty: str) -> bool:
        return await self._leases.lead(duty)

    async def audit_rows(
        self, chain: AuditChain = AuditChain.MAIN, batch_size: int = 5000
    ) -> AsyncIterator[AuditRow]:
        after = 0
        query = _Q.AUDIT_ROWS if chain is AuditChain.MAIN else _Q.ACCESS_ROWS
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, (after, batch_size))
                rows = await cur.fetchall()
            if not rows:
                return
            for seq, event_id, recorded_at, payload, prev_hash, hash_ in rows:
                yield AuditRow(seq, event_id, recorded_at, bytes(payload), prev_hash, hash_)
            after = rows[-1][0]

    async def audit_head(self, chain: AuditChain = AuditChain.MAIN) -> tuple[int, str]:
        query = _Q.AUDIT_HEAD if chain is AuditChain.MAIN else _Q.ACCESS_HEAD
        row = await self._fetchone(query, ())
        assert row is not None, "migrations 0001 and 0007 create the head rows"
        return int(row[0]), str(row[1])

    async def write(self, writes: WriteSet) -> WriteResult:
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((writes, future))
        return await future

    async def bulk_load(
        self, resources: Iterable[PutResource], audit: AuditRecord, *, index_later: bool = False
    ) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((_BulkLoad(list(resources), audit, index_later), future))
        return await future

    async def merge_pending_index(self) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((_MERGE_PENDING, future))
        return await future

    # -- the writer task -----------------------------------------------------------------------

    async def _writer_main(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results: list[object]
            try:
                results = await self._run_batch(batch)
            except Exception as exc:  # every waiting request must be answered, whatever failed
                failure = StoreUnavailable("the store refused the transaction")
                failure.__cause__ = exc
                results = [failure] * len(batch)
            for (_job, future), outcome in zip(batch, results, strict=True):
                if future.cancelled():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _run_batch(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> list[object]:
        results: list[object] = []
        sync_dirs = [d for job, _ in batch if isinstance(job, WriteSet) for d in job.sync_dirs]
        if sync_dirs:  # files the batch's records name, durable before the records are
            await asyncio.to_thread(sync_file_systems, sync_dirs)
        events_only = [isinstance(job, WriteSet) and job.is_audit_only() for job, _ in batch]
        async with self._pool.connection() as conn, conn.transaction():
            main = None if all(events_only) else await _head(conn, _Q.AUDIT_HEAD_LOCK)
            access = await _head(conn, _Q.ACCESS_HEAD_LOCK) if any(events_only) else None
            start = main.mark() if main is not None else None
            access_rows: list[batching.ChainedRow] = []
            for (job, _future), only in zip(batch, events_only, strict=True):
                if only:  # a read's events: nothing in them can fail alone (no savepoint)
                    assert access is not None
                    assert isinstance(job, WriteSet)
                    results.append(batching.link_events(access, job, access_rows))
                    continue
                assert main is not None
                mark = main.mark()
                try:
                    async with conn.transaction():
                        if isinstance(job, WriteSet):
                            outcome: object = await self._apply(conn, job, main)
                        elif job is _MERGE_PENDING:
                            outcome = await self._merge_pending(conn)
                        else:
                            outcome = await self._bulk(conn, job, main)
                except StoreError as exc:
                    main.rewind(mark)
                    outcome = exc
                results.append(outcome)
            if access is not None and access_rows:
                async with conn.cursor() as cur:
                    await cur.executemany(_Q.ACCESS_INSERT, access_rows)
                await conn.execute(_Q.ACCESS_HEAD_SET, access.mark())
            if main is not None and main.mark() != start:
                await conn.execute(_Q.AUDIT_HEAD_SET, main.mark())
            self._batches += 1
            if self._batches % _NONCE_PURGE_EVERY == 0:
                await conn.execute(_Q.NONCE_PURGE, (int(time.time()),))
        return results

    async def _bulk(
        self, conn: psycopg.AsyncConnection[Any], job: _BulkLoad, cursor: ChainCursor
    ) -> int:
        resources = job.resources
        now = batching.now()
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY resources (resource_type, id, version, state, body, restricted_body,"
                " successor_id, updated_at, index_keys) FROM STDIN"
            ) as copy,
        ):
            for r in resources:
                await copy.write_row(batching.insert_row(r, now))
        async with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY {'search_index_pending' if job.index_later else 'search_index'}"
                " (resource_type, param, value, id) FROM STDIN"
            ) as copy,
        ):
            for r in resources:
                for key in batching.index_rows(r):
                    await copy.write_row(key)
        await conn.execute(_Q.AUDIT_INSERT, cursor.link(job.audit))
        return len(resources)

    @staticmethod
    async def _merge_pending(conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute(_Q.INDEX_PENDING_COUNT)
        row = await cur.fetchone()
        pending = int(row[0]) if row is not None else 0
        if pending:
            await conn.execute(_Q.INDEX_PENDING_MERGE)
            await conn.execute(_Q.INDEX_PENDING_CLEAR)
        return pending

    async def _apply(
        self, conn: psycopg.AsyncConnection[Any], ws: WriteSet, cursor: ChainCursor
    ) -> WriteResult:
        now = batching.now()
        if ws.idempotency is not None:
            rec = ws.idempotency
            try:
                await conn.execute(_Q.IDEMPOTENCY_INSERT, batching.idempotency_row(rec, now))
            except psycopg.errors.UniqueViolation as exc:
                raise IdempotencyKeyTaken(rec.request_id) from exc
        for nonce in ws.nonces:
            try:
                await conn.execute(_Q.NONCE_INSERT, (nonce.issuer, nonce.value, nonce.expires_at))
            except psycopg.errors.UniqueViolation as exc:
                raise NonceReplayed(nonce.issuer) from exc
        for put in ws.puts:
            await self._put(conn, put, now)
        seqs = []
        for record in ws.audit:
            row = cursor.link(record)
            await conn.execute(_Q.AUDIT_INSERT, row)
            seqs.append(row[0])
        for message in ws.outbox:
            await conn.execute(_Q.OUTBOX_INSERT, (message.topic, message.key, message.payload, now))
        return WriteResult(tuple(seqs))

    @staticmethod
    async def _put(conn: psycopg.AsyncConnection[Any], put: PutResource, now: str) -> None:
        if put.expected_version is None:
            try:
                await conn.execute(_Q.INSERT, batching.insert_row(put, now))
            except psycopg.errors.UniqueViolation as exc:
                raise AlreadyExists(f"{put.resource_type}/{put.id}") from exc
            if put.search_keys:  # a new resource has no keys yet: nothing to look up or delete
                async with conn.cursor() as cur:
                    await cur.executemany(_Q.INDEX_INSERT, batching.index_rows(put))
            return
        cur = await conn.execute(_Q.GET_FOR_UPDATE + " FOR UPDATE", (put.resource_type, put.id))
        previous = await cur.fetchone()
        if previous is None or previous[0] != put.expected_version:
            raise VersionConflict(f"{put.resource_type}/{put.id}")
        version, body, keys = previous
        if put.keep_history:
            await conn.execute(_Q.HISTORY, (put.resource_type, put.id, version, body, now))
        await conn.execute(_Q.UPDATE, batching.update_row(put, now, keys))
        if put.search_keys is not None:  # the keys it had are in its row (migration 0006)
            gone, new = batching.index_changes(put, batching.stored_keys(keys))
            async with conn.cursor() as cur:
                if gone:
                    await cur.executemany(_Q.INDEX_DELETE_KEY, gone)
                if new:
                    await cur.executemany(_Q.INDEX_INSERT, new)
