"""Schema upgrades on either store, through Alembic (``openspine migrate``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["sqlalchemy_url", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(store_url: str) -> str:
    if store_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + store_url.removeprefix("postgresql://")
    return store_url


def upgrade(store_url: str, revision: str = "head") -> None:
    """Bring the store at ``store_url`` up to ``revision``, creating it if needed."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once here
            conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(store_url).replace("%", "%%"))
    command.upgrade(config, revision)
