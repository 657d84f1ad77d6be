"""Open the store that a URL names: ``sqlite:///path`` or ``postgresql://…``."""

from __future__ import annotations

from pathlib import Path

from openspine.platform.storage.ports import Store

__all__ = ["open_store"]


def open_store(
    url: str,
    *,
    max_batch: int = 512,
    sqlite_synchronous: str = "FULL",
    sqlite_writer_socket: Path | None = None,
    pool_size: int = 8,
) -> Store:
    if url.startswith("sqlite:///"):
        from openspine.platform.storage.sqlite import SqliteStore

        return SqliteStore(
            Path(url.removeprefix("sqlite:///")),
            synchronous=sqlite_synchronous,
            max_batch=max_batch,
            writer_socket=sqlite_writer_socket,
        )
    if url.startswith("postgresql://"):
        from openspine.platform.storage.postgres import PostgresStore

        return PostgresStore(url, max_batch=max_batch, pool_size=pool_size)
    raise ValueError("unsupported store URL scheme")
