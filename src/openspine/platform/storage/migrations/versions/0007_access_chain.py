"""The audit trail's second chain, ``access``: events of write sets that change nothing else.

A read's audit event used to be appended to the one chain, in the data file. On SQLite every
such commit emptied every reader's page cache (ADR 0023), so the ``access`` chain keeps those
events apart (ADR 0025):

- PostgreSQL: table ``access_events`` (the columns of ``audit_events``) and the head row
  ``access`` in ``audit_head``.
- SQLite: the same two tables in a file of their own next to the data file,
  ``<store>-access.db`` (WAL). The data file itself does not change.

Downgrade: on PostgreSQL the table goes only while it is empty (its events would be lost); on
SQLite the access file stays where it is, unread by the older code.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from openspine.platform.storage.sqlite_access import access_path

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_GENESIS = "0" * 64
_SQLITE_ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_events (
    seq INTEGER PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    recorded_at VARCHAR(40) NOT NULL,
    payload BLOB NOT NULL,
    prev_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    chain VARCHAR(16) PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash VARCHAR(64) NOT NULL
);
"""
_HEAD_ROW = "INSERT {} INTO audit_head (chain, seq, hash) VALUES ('access', 0, :genesis)"


def _store_path() -> Path:
    database = op.get_bind().engine.url.database
    assert database, "a SQLite store is a file"
    return Path(database)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        conn = sqlite3.connect(access_path(_store_path()))
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SQLITE_ACCESS_SCHEMA)
            with conn:
                conn.execute(_HEAD_ROW.format("OR IGNORE"), {"genesis": _GENESIS})
        finally:
            conn.close()
        return
    op.create_table(
        "access_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.get_bind().execute(sa.text(_HEAD_ROW.format("")), {"genesis": _GENESIS})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    kept = op.get_bind().execute(sa.text("SELECT count(*) FROM access_events")).scalar_one()
    if kept:
        raise RuntimeError(
            f"the access chain holds {kept} events, which a downgrade past 0007 would lose"
        )
    op.execute("DELETE FROM audit_head WHERE chain = 'access'")
    op.drop_table("access_events")
