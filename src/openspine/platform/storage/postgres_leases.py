"""PostgreSQL leases for scheduled duties (see :mod:`.leases`): session advisory locks."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import psycopg

from openspine.platform.storage.leases import duty_name
from openspine.platform.storage.ports import StoreUnavailable
from openspine.platform.storage.postgres_sessions import guarded_conninfo

__all__ = ["AdvisoryLeases"]

_TRY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
#: How long a question to the database may take (a connection that hangs is as good as lost).
_TIMEOUT_S: Final = 3


class AdvisoryLeases:
    """Leases held as PostgreSQL session advisory locks, one connection per duty held."""

    def __init__(self, url: str) -> None:
        # The server ends the session of a holder that has gone silent, and frees its lock,
        # within about 25 s instead of hours (ADR 0026).
        self._url = guarded_conninfo(url)
        self._held: dict[str, psycopg.AsyncConnection[Any]] = {}

    async def lead(self, duty: str) -> bool:
        key = f"openspine:{duty_name(duty)}"
        held = self._held.get(duty)
        if held is not None:
            try:  # the session, and so the lock, is still there
                await asyncio.wait_for(held.execute("SELECT 1"), _TIMEOUT_S)
                return True
            except (psycopg.Error, TimeoutError):
                del self._held[duty]
                await held.close()
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=_TIMEOUT_S
            )
        except psycopg.Error as exc:
            raise StoreUnavailable("cannot connect to PostgreSQL") from exc
        try:
            cursor = await asyncio.wait_for(conn.execute(_TRY_LOCK, (key,)), _TIMEOUT_S)
            row = await cursor.fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            await conn.close()
            raise StoreUnavailable("cannot take the lease") from exc
        if row is not None and row[0]:
            self._held[duty] = conn
            return True
        await conn.close()
        return False

    async def release_all(self) -> None:
        held, self._held = self._held, {}
        for conn in held.values():
            await conn.close()  # the session ends, and its advisory locks with it
