"""One contract suite, run against every storage adapter (SQLite always; PostgreSQL when
OPENSPINE_TEST_POSTGRES_URL names a server, as CI does)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage.factory import open_store
from openspine.platform.storage.file_sync import HAVE_SYNCFS
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import (
    AlreadyExists,
    AuditChain,
    ConsumeNonce,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    NonceReplayed,
    OutboxMessage,
    PutResource,
    ResourceState,
    Store,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    WriteSet,
)
from openspine.platform.storage.sqlite import SqliteStore
from openspine.platform.storage.sqlite_access import access_path
from openspine.platform.storage.sqlite_writer import WriterProcess, start_writer_process
from tests.contract.storage.records import audit_event
from tests.postgres import throwaway_database

pytestmark = pytest.mark.anyio


class Execute(Protocol):
    """Runs SQL on the store behind the adapter; ``access``: on the access chain's tables
    (on SQLite, in the access file; ADR 0025)."""

    def __call__(self, statement: str, *, access: bool = False) -> None: ...


def put(
    rid: str, version: int = 1, expected: int | None = None, body: bytes = b"{}"
) -> PutResource:
    return PutResource("Thing", rid, version, body, expected)


BACKENDS = [
    "sqlite",
    "sqlite-writer-process",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@contextlib.contextmanager
def _backend(kind: str, tmp_path: Path) -> Iterator[tuple[str, Execute]]:
    """A migrated, empty store of ``kind``: its URL and a way to run SQL on it; dropped after."""
    if kind.startswith("sqlite"):
        path = tmp_path / "contract.db"
        upgrade(f"sqlite:///{path}")

        def execute(statement: str, *, access: bool = False) -> None:
            with sqlite3.connect(access_path(path) if access else path) as conn:
                conn.executescript(statement)
            conn.close()

        yield f"sqlite:///{path}", execute
        return
    with throwaway_database("openspine_contract") as url:
        import psycopg

        upgrade(url)

        def execute_pg(statement: str, *, access: bool = False) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(statement)

        yield url, execute_pg


@pytest.fixture(params=BACKENDS)
async def store_and_sql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Execute]]:
    with _backend(request.param, tmp_path) as (url, execute):
        writer: WriterProcess | None = None
        if request.param == "sqlite-writer-process":
            # Write sets go to the writer process `openspine serve` runs (ADR 0015).
            writer = start_writer_process(
                tmp_path / "contract.db", synchronous="FULL", max_batch=64
            )
        store = open_store(
            url, max_batch=64, sqlite_writer_socket=writer.socket_path if writer else None
        )
        await store.start()
        try:
            yield store, execute
            if writer is not None:
                assert isinstance(store, SqliteStore)
                assert store.writes_through_writer_process  # never fell back to its own thread
        finally:
            await store.close()
            if writer is not None:
                writer.stop()


@pytest.fixture(params=[BACKENDS[0], BACKENDS[2]])
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' stores on one backend (two store objects: each holds its own leases)."""
    with _backend(request.param, tmp_path) as (url, _):
        first, second = open_store(url, max_batch=64), open_store(url, max_batch=64)
        await first.start()
        await second.start()
        try:
            yield first, second
        finally:
            await second.close()
            await first.close()


async def test_create_read_and_conditional_update(store_and_sql: tuple[Store, Execute]) -> None:
    store, _ = store_and_sql
    await store.write(WriteSet(puts=[put("a", body=b'{"v":1}')]))
    got = await store.get("Thing", "a")
    assert got is not None
    assert (got.version, got.body, got.state) == (1, b'{"v":1}', ResourceState.ACTIVE)
    await store.write(WriteSet(puts=[put("a", 2, expected=1, body=b'{"v":2}')]))
    got = await store.get("Thing", "a")
    assert got is not None
    assert (got.version, got.body) == (2, b'{"v":2}')
    assert await store.get("Thing", "missing") is None


async def test_stale_update_conflicts_and_changes_nothing(
    store_and_sql: tuple[Store, Execute],
) -> None:
    store, _ = store_and_sql
    await store.write(WriteSet(puts=[put("b")]))
    head = await store.audit_head()
    with pytest.raises(VersionConflict):
        await store.write(WriteSet(puts=[put("b", 2, expected=7)], audit=[audit_event()]))
    assert (await store.audit_head()) == head
    got = await store.get("Thing", "b")
    assert got is not None
    assert got.version == 1


async def test_search_keys_are_replaced_with_the_resource_and_scanned_in_byte_order(
    store_and_sql: tuple[Store, Execute],
) -> None:
    store, _ = store_and_sql
    keys = (("fd", "SMITH|2010-10-22"), ("fd", "SMYTHE|2010-10-22"), ("fd", "Smith|lower"))
    await store.write(WriteSet(puts=[PutResource("Thing", "k", 1, b"{}", None, search_keys=keys)]))
    await store.bulk_load(
        [PutResource("Thing", "k2", 1, b"{}", None, search_keys=(("fd", "SMITH|2011-01-01"),))],
        audit_event(),
    )
    assert await store.scan_index("Thing", "fd", "SM", "SM~", 10) == [
        ("k", "SMITH|2010-10-22"),
        ("k2", "SMITH|2011-01-01"),
        ("k", "SMYTHE|2010-10-22"),
    ]
    assert await store.scan_index("Thing", "fd", "SMITH|", "SMITH|~", 1) == [
        ("k", "SMITH|2010-10-22")
    ]
    # A failed conditional put leaves the old keys; a successful one replaces them.
    moved = PutResource("Thing", "k", 2, b"{}", 9, search_keys=(("fd", "JONES|2010-10-22"),))
    with pytest.raises(VersionConflict):
        await store.write(WriteSet(puts=[moved]))
    assert len(await store.scan_index("Thing", "fd", "SMITH|", "SMITH|~", 10)) == 2
    moved = PutResource("Thing", "k", 2, b"{}", 1, search_keys=(("fd", "JONES|2010-10-22"),))
    await store.write(WriteSet(puts=[moved]))
    assert await store.scan_index("Thing", "fd", "A", "Z~", 10) == [
        ("k", "JONES|2010-10-22"),
        ("k2", "SMITH|2011-01-01"),
    ]
    # A put without keys keeps them.
    await store.write(WriteSet(puts=[PutResource("Thing", "k", 3, b"{}", 2)]))
    assert len(await store.scan_index("Thing", "fd", "JONES", "JONES~", 10)) == 1


async def test_an_update_moves_only_the_keys_it_changes(
    store_and_sql: tuple[Store, Execute],
) -> None:
    store, _ = store_and_sql

    async def keys() -> dict[str, list[tuple[str, str]]]:
        found = {p: await store.scan_index("Thing", p, "", "~", 10) for p in ("all", "in", "rm")}
        return {p: rows for p, rows in found.items() if rows}

    kept, dropped = ("all", "m1"), ("in", "BOB|2026-11-24|m1")
    first = PutResource("Thing", "m1", 1, b"{}", None, search_keys=(kept, dropped))
    other = PutResource("Thing", "m2", 1, b"{}", None, search_keys=(("in", "BOB|2026-11-25|m2"),))
    await store.write(WriteSet(puts=[first, other]))
    added = ("rm", "2026-12-24|m1")
    # The same key twice in an update is one key, as it is in the index.
    acknowledged = PutResource("Thing", "m1", 2, b"{}", 1, search_keys=(kept, added, added))
    await store.write(WriteSet(puts=[acknowledged]))
    assert await keys() == {
        "all": [("m1", "m1")],
        "in": [("m2", "BOB|2026-11-25|m2")],
        "rm": [("m1", "2026-12-24|m1")],
    }
    # An update to no keys at all removes every one of them; the other resource's stay.
    await store.write(WriteSet(puts=[PutResource("Thing", "m1", 3, b"{}", 2, search_keys=())]))
    assert await keys() == {"in": [("m2", "BOB|2026-11-25|m2")]}


async def test_keys_loaded_for_later_are_found_only_after_the_merge(
    store_and_sql: tuple[Store, Execute],
) -> None:
    store, _ = store_and_sql
    for block in range(3):  # several chunks, each with keys out of order
        await store.bulk_load(
            [
                PutResource(
                    "Thing",
                    f"p{block}{i}",
                    1,
                    b"{}",
                    None,
                    search_keys=(("fd", f"NAME{9 - i}|{block}"),),
                )
                for i in range(10)
            ],
            audit_event(),
            index_later=True,
        )
        assert await store.count("Thing") == 10 * (block + 1)
    assert await store.scan_index("Thing", "fd", "A", "Z~", 100) == []
    assert await store.merge_pending_index() == 30
    found = await store.scan_index("Thing", "fd", "A", "Z~", 100)
    assert len(found) == 30
    assert [value for _, value in found] == sorted(value for _, value in found)
    assert await store.merge_pending_index() == 0
    # The merged keys are the resource's own: an update replaces them.
    moved = PutResource("Thing", "p05", 2, b"{}", 1, search_keys=(("fd", "OTHER|0"),))
    await store.write(WriteSet(puts=[moved]))
    assert await store.scan_index("Thing", "fd", "NAME4|0", "NAME4|0", 10) == []
    assert await store.scan_index("Thing", "fd", "OTHER|", "OTHER|~", 10) == [("p05", "OTHER|0")]
    # A later merge into a non-empty index keeps what is there.
    await store.bulk_load(
        [PutResource("Thing", "late", 1, b"{}", None, search_keys=(("fd", "LATE|1"),))],
        audit_event(),
        index_later=True,
    )
    assert await store.merge_pending_index() == 1
    assert len(await store.scan_index("Thing", "fd", "A", "Z~", 100)) == 31
    # A pending key that is already indexed (its resource written since) cannot stop a merge.
    await store.bulk_load(
        [PutResource("Thing", "later", 1, b"{}", None, search_keys=(("fd", "LATER|1"),))],
        audit_event(),
        index_later=True,
    )
    rewritten = PutResource("Thing", "later", 2, b"{}", 1, search_keys=(("fd", "LATER|1"),))
    await store.write(WriteSet(puts=[rewritten]))
    assert await store.merge_pending_index() == 1
    assert await store.scan_index("Thing", "fd", "LATER|", "LATER|~", 10) == [("later", "LATER|1")]
    # More keys pending than indexed: the merge may rebuild what finds a resource's own keys,
    # and must keep the keys already there.
    await store.bulk_load(
        [
            PutResource("Thing", f"bulk{i}", 1, b"{}", None, search_keys=(("fd", f"BULK|{i}"),))
            for i in range(40)
        ],
        audit_event(),
        index_later=True,
    )
    assert await store.merge_pending_index() == 40
    assert len(await store.scan_index("Thing", "fd", "A", "Z~", 100)) == 72
    again = PutResource("Thing", "p07", 2, b"{}", 1, search_keys=(("fd", "AGAIN|0"),))
    await store.write(WriteSet(puts=[again]))
    assert await store.scan_index("Thing", "fd", "NAME2|0", "NAME2|0", 10) == []
    assert await store.scan_index("Thing", "fd", "AGAIN|", "AGAIN|~", 10) == [("p07", "AGAIN|0")]
    assert (await verify_chain(store)).ok


async def test_create_twice_is_refused(store_and_sql: tuple[Store, Execute]) -> None:
    store, _ = store_and_sql
    await store.write(WriteSet(puts=[put("c")]))
    with pytest.raises(AlreadyExists):
        await store.write(WriteSet(puts=[put("c")]))


async def test_group_commit_isolates_a_failing_write_set(
    store_and_sql: tuple[Store, Execute],
) -> None:
    store, _ = store_and_sql
    await store.write(WriteSet(puts=[put("dup")]))
    writes = [
        WriteSet(
            puts=[put(f"g{i}")],
            audit=[audit_event()],
            outbox=[OutboxMessage("test", f"g{i}", b"{}")],
        )
        for i in range(20)
    ]
    writes.insert(10, WriteSet(puts=[put("g-bad"), put("dup")], audit=[audit_event()]))
    results = await asyncio.gather(*(store.write(w) for w in writes), return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1
    assert isinstance(failures[0], AlreadyExists)
    assert await store.get("Thing", "g-bad") is None  # the failed set left nothing behind
    assert await store.count("Thing") == 21
    assert (await verify_chain(store)).ok


@pytest.mark.skipif(not HAVE_SYNCFS, reason="syncfs is Linux's; elsewhere blobs sync themselves")
async def test_a_write_commits_only_after_its_files_are_synced(
    store_and_sql: tuple[Store, Execute], tmp_path: Path
) -> None:
    store, _ = store_and_sql
    head = await store.audit_head()
    # A directory that cannot be synced: the write is refused and leaves nothing behind.
    with pytest.raises(StoreUnavailable):
        await store.write(
            WriteSet(
                puts=[put("unsynced")],
                audit=[audit_event()],
                sync_dirs=(str(tmp_path / "missing"),),
            )
        )
    assert await store.get("Thing", "unsynced") is None
    assert (await store.audit_head()) == head
    # One that can: the write and the rest of its batch commit.
    results = await asyncio.gather(
        store.write(WriteSet(puts=[put("synced")], sync_dirs=(str(tmp_path),))),
        store.write(WriteSet(audit=[audit_event()])),
    )
    assert len(results) == 2
    assert await store.get("Thing", "synced") is not None


async def test_nonce_is_single_use(store_and_sql: tuple[Store, Execute]) -> None:
    store, _ = store_and_sql
    nonce = ConsumeNonce("client", "jti-1", 2_000_000_000)
    await store.write(WriteSet(nonces=[nonce]))
    with pytest.raises(NonceReplayed):
        await store.write(WriteSet(nonces=[nonce]))


async def test_a_replacement_can_keep_no_history(store_and_sql: tuple[Store, Execute]) -> None:
    store, execute = store_and_sql
    await store.write(WriteSet(puts=[put("h")]))
    execute("DROP TABLE resource_history")  # from here, a write that keeps history fails
    untracked = PutResource("Thing", "h", 2, b'{"v":2}', 1, keep_history=False)
    await store.write(WriteSet(puts=[untracked]))
    stored = await store.get("Thing", "h")
    assert stored is not None
    assert (stored.version, stored.body) == (2, b'{"v":2}')
    with pytest.raises(StoreError):
        await store.write(WriteSet(puts=[put("h", 3, 2)]))


async def test_idempotency_record(store_and_sql: tuple[Store, Execute]) -> None:
    store, _ = store_and_sql
    record = IdempotencyRecord("caller", "rid", "fp", 201, b"{}", b'{"id":1}')
    await store.write(WriteSet(puts=[put("i")], idempotency=record))
    assert await store.get_idempotency("caller", "rid") == record
    assert await store.get_idempotency("other", "rid") is None
    with pytest.raises(IdempotencyKeyTaken):
        await store.write(WriteSet(puts=[put("i2")], idempotency=record))
    assert await store.get("Thing", "i2") is None


async def test_bulk_load_is_audited(store_and_sql: tuple[Store, Execute]) -> None:
    store, _ = store_and_sql
    loaded = await store.bulk_load((put(f"bulk{i}") for i in range(500)), audit_event())
    assert loaded == 500
    assert await store.count("Thing") == 500
    result = await verify_chain(store)
    assert result.ok
    assert result.checked == 1


async def _chain_of(store: Store, chain: AuditChain, n: int) -> None:
    for i in range(n):
        if chain is AuditChain.ACCESS:  # events alone, as a read writes them
            await store.write(WriteSet(audit=[audit_event()]))
        else:  # events with the change they record
            await store.write(WriteSet(puts=[put(f"chained-{i}")], audit=[audit_event()]))


@pytest.mark.parametrize("chain", list(AuditChain))
@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("UPDATE {t} SET payload = payload || payload WHERE seq = 3", 3),
        ("DELETE FROM {t} WHERE seq = 4", 4),
        (
            "UPDATE {t} SET seq = -1 WHERE seq = 2;"
            " UPDATE {t} SET seq = 2 WHERE seq = 5;"
            " UPDATE {t} SET seq = 5 WHERE seq = -1",
            2,
        ),
        ("DELETE FROM {t} WHERE seq = 6", 6),
    ],
    ids=["edit", "delete", "reorder", "truncate"],
)
async def test_tampering_is_detected(
    store_and_sql: tuple[Store, Execute], tamper: str, bad_seq: int, chain: AuditChain
) -> None:
    store, execute = store_and_sql
    await _chain_of(store, chain, 6)
    assert (await verify_chain(store, chain)).ok
    other = AuditChain.MAIN if chain is AuditChain.ACCESS else AuditChain.ACCESS
    untouched = await verify_chain(store, other)
    table = "access_events" if chain is AuditChain.ACCESS else "audit_events"
    execute(tamper.format(t=table), access=chain is AuditChain.ACCESS)
    result = await verify_chain(store, chain)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert await verify_chain(store, other) == untouched  # each chain stands on its own


async def test_events_alone_go_to_the_access_chain(
    store_and_sql: tuple[Store, Execute],
) -> None:
    """A read's events, alone in their write set, are appended to the access chain; events
    with a change stay with it in the main chain, each chain numbered from 1 (ADR 0025)."""
    store, _ = store_and_sql
    reads = await asyncio.gather(*(store.write(WriteSet(audit=[audit_event()])) for _ in range(5)))
    changed = await store.write(WriteSet(puts=[put("changed")], audit=[audit_event()]))
    both = await asyncio.gather(
        store.write(WriteSet(audit=[audit_event(), audit_event()])),
        store.write(WriteSet(puts=[put("changed-too")], audit=[audit_event()])),
    )
    assert sorted(seq for r in reads for seq in r.audit_seqs) == [1, 2, 3, 4, 5]
    assert changed.audit_seqs == (1,)
    assert both[0].audit_seqs == (6, 7)
    assert both[1].audit_seqs == (2,)
    assert (await store.audit_head(AuditChain.ACCESS))[0] == 7
    assert (await store.audit_head(AuditChain.MAIN))[0] == 2
    access = [row async for row in store.audit_rows(AuditChain.ACCESS)]
    main = [row async for row in store.audit_rows(AuditChain.MAIN)]
    assert [row.seq for row in access] == [1, 2, 3, 4, 5, 6, 7]
    assert [row.seq for row in main] == [1, 2]
    assert not {row.event_id for row in access} & {row.event_id for row in main}
    for chain, count in ((AuditChain.ACCESS, 7), (AuditChain.MAIN, 2)):
        result = await verify_chain(store, chain)
        assert result.ok
        assert result.checked == count


async def test_one_store_of_many_leads_a_duty_until_it_closes(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    assert await first.lead("mesh-jobs")
    assert await first.lead("mesh-jobs")  # held: still the leader
    assert not await second.lead("mesh-jobs")
    assert await second.lead("eps-jobs")  # each duty has its own lease
    assert not await first.lead("eps-jobs")
    await first.close()  # as a process that stops or dies: its leases are freed
    assert await second.lead("mesh-jobs")
    with pytest.raises(ValueError, match="not a duty name"):
        await second.lead("../escape")


@pytest.mark.postgres
async def test_a_lease_whose_session_was_ended_is_taken_again(tmp_path: Path) -> None:
    """PostgreSQL frees a session's advisory locks when it ends (here: terminated by an
    operator); the leader notices at its next turn and takes the lease again."""
    with _backend("postgres", tmp_path) as (url, execute):
        store = open_store(url, max_batch=64)
        await store.start()
        try:
            assert await store.lead("mesh-jobs")
            execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            await asyncio.sleep(0.2)
            assert await store.lead("mesh-jobs")
            other = open_store(url, max_batch=64)
            await other.start()
            try:
                assert not await other.lead("mesh-jobs")  # held again, by the first store
            finally:
                await other.close()
        finally:
            await store.close()
