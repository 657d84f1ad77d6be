"""A node gone silent does not hold the other nodes up (ADR 0026): PostgreSQL ends its session
and frees what it held. Against a real server (``OPENSPINE_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage import postgres_sessions
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import PutResource, WriteSet
from openspine.platform.storage.postgres import PostgresStore
from openspine.platform.storage.postgres_sessions import guarded_conninfo
from openspine.platform.storage.sql import SQL
from tests.contract.storage.records import audit_event
from tests.postgres import throwaway_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def change(rid: str) -> WriteSet:
    return WriteSet(puts=[PutResource("Thing", rid, 1, b"{}", None)], audit=[audit_event()])


async def test_a_node_stalled_inside_a_batch_does_not_hold_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node that stops in the middle of a batch, holding the main chain's head row, is cut
    off by the server once it has been silent for ``STALLED_TRANSACTION_MS``; the other nodes'
    writes then go on, and so do the stalled node's own once it is back."""
    monkeypatch.setattr(postgres_sessions, "STALLED_TRANSACTION_MS", 1000)
    with throwaway_database("openspine_sessions") as url:
        upgrade(url)
        stalled, other = PostgresStore(url, max_batch=64), PostgresStore(url, max_batch=64)
        await stalled.start()
        await other.start()
        try:
            assert (await other.write(change("before"))).audit_seqs == (1,)
            async with stalled._pool.connection() as conn:
                await conn.execute("BEGIN")
                await conn.execute(SQL.AUDIT_HEAD + " FOR UPDATE")  # as a batch does
                started = time.monotonic()
                # The stalled node sends nothing more; the other one's write waits for the head
                # row until the server ends the stalled session.
                result = await asyncio.wait_for(other.write(change("during")), 10)
                waited = time.monotonic() - started
                with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                    await conn.execute("SELECT 1")  # its session is gone
            assert result.audit_seqs == (2,)
            assert 0.8 < waited < 5
            assert (await stalled.write(change("after"))).audit_seqs == (3,)
            verified = await verify_chain(other)
            assert verified.ok
            assert verified.checked == 3
        finally:
            await other.close()
            await stalled.close()


async def test_every_session_has_the_guards_and_keeps_the_operators_options() -> None:
    with throwaway_database("openspine_sessions") as url:
        operator = url + "?options=-c%20statement_timeout%3D5000%20-c%20tcp_keepalives_idle%3D30"
        async with await psycopg.AsyncConnection.connect(guarded_conninfo(operator)) as conn:
            shown = {}
            for name in (
                "idle_in_transaction_session_timeout",
                "tcp_keepalives_idle",
                "tcp_keepalives_interval",
                "tcp_keepalives_count",
                "tcp_user_timeout",
                "statement_timeout",
            ):
                cursor = await conn.execute(f"SHOW {name}")
                row = await cursor.fetchone()
                assert row is not None
                shown[name] = row[0]
            client = conn.info.get_parameters()
    assert shown == {
        "idle_in_transaction_session_timeout": "10s",
        "tcp_keepalives_idle": "30",  # the operator's own setting wins
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "25000",  # milliseconds, shown without a unit
        "statement_timeout": "5s",  # and the operator's other options are kept
    }
    assert client["keepalives_idle"] == "10"
    assert client["tcp_user_timeout"] == "25000"
