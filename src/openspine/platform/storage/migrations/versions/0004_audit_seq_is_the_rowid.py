"""SQLite: an audit event's sequence number is the row's own key (its rowid).

Declared ``BIGINT PRIMARY KEY``, the sequence number was an ordinary column of a rowid table,
so SQLite kept a second B-tree for it, and every audit event (one per request) was written to
three B-trees, each group commit dirtying a leaf of each. ``INTEGER PRIMARY KEY`` makes it the
rowid: two B-trees per event. Paired read runs gained 8.7 % (ADR 0018). PostgreSQL's primary
key was already its only index on the column; nothing changes there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COPY = (
    "INSERT INTO audit_events_rebuilt (seq, event_id, recorded_at, payload, prev_hash, hash)"
    " SELECT seq, event_id, recorded_at, payload, prev_hash, hash FROM audit_events ORDER BY seq"
)


def _rebuild(seq_type: str) -> None:
    op.execute(
        "CREATE TABLE audit_events_rebuilt ("
        f"seq {seq_type} NOT NULL PRIMARY KEY, "
        "event_id VARCHAR(36) NOT NULL UNIQUE, "
        "recorded_at VARCHAR(40) NOT NULL, "
        "payload BLOB NOT NULL, "
        "prev_hash VARCHAR(64) NOT NULL, "
        "hash VARCHAR(64) NOT NULL)"
    )
    op.execute(_COPY)
    op.execute("DROP TABLE audit_events")
    op.execute("ALTER TABLE audit_events_rebuilt RENAME TO audit_events")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("INTEGER")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("BIGINT")
