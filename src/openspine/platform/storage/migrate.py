"""Schema upgrades on either store, through Alembic (``openspine migrate``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["OLDEST_SERVED", "downgrade", "schema_behind", "sqlalchemy_url", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: The oldest schema this code runs on: 0007 adds the ``access`` audit chain, where every read's
#: event goes (on SQLite, a file of its own); 0006 gave every resource row its search keys. An
#: older store is refused until `openspine migrate`.
OLDEST_SERVED = "0007"


def sqlalchemy_url(store_url: str) -> str:
    if store_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + store_url.removeprefix("postgresql://")
    return store_url


def _config(store_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(store_url).replace("%", "%%"))
    return config


def upgrade(store_url: str, revision: str = "head") -> None:
    """Bring the store at ``store_url`` up to ``revision``, creating it if needed."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once here
            conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    command.upgrade(_config(store_url), revision)


def downgrade(store_url: str, revision: str) -> None:
    """Take the store at ``store_url`` back to ``revision`` (each migration has its way back)."""
    command.downgrade(_config(store_url), revision)


def schema_behind(store_url: str) -> tuple[str | None, str] | None:
    """``(the store's revision, the latest)`` when the store needs ``openspine migrate``.

    ``None`` as the store's revision: it was never migrated. Revisions are zero-padded numbers,
    so they compare as strings (:data:`OLDEST_SERVED`).
    """
    if (
        store_url.startswith("sqlite:///")
        and not Path(store_url.removeprefix("sqlite:///")).is_file()
    ):
        return None  # connecting would create an empty file; opening the store says it is missing
    head = ScriptDirectory.from_config(_config(store_url)).get_current_head()
    assert head is not None, "the project has migrations"
    engine = create_engine(sqlalchemy_url(store_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError:
        return None  # unreachable: opening the store reports that, with its own words
    finally:
        engine.dispose()
    return None if current == head else (current, head)
