"""The PostgreSQL server the tests may use (``OPENSPINE_TEST_POSTGRES_URL``; CI sets it)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("OPENSPINE_TEST_POSTGRES_URL")


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards: its URL.

    Skips the test where no server is named.
    """
    if not PG_URL:
        pytest.skip("OPENSPINE_TEST_POSTGRES_URL is not set (CI sets it)")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def empty_store(kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    """The URL of a store not yet created: a SQLite file under ``tmp_path``, or a throwaway
    PostgreSQL database (``kind``: "sqlite" or "postgres")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / name}.db"
        return
    with throwaway_database(f"openspine_{name}") as url:
        yield url
