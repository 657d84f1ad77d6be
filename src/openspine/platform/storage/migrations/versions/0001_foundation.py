"""Foundation: versioned resources, their history, the audit chain, outbox, idempotency, nonces.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("restricted_body", sa.LargeBinary, nullable=True),
        sa.Column("successor_id", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id"),
    )
    op.create_table(
        "resource_history",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id", "version"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("chain", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute("INSERT INTO audit_head (chain, seq, hash) VALUES ('main', 0, '" + "0" * 64 + "')")
    op.create_table(
        "outbox",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("msg_key", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("dispatched_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["dispatched_at", "id"])
    op.create_table(
        "idempotency",
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("headers", sa.LargeBinary, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("caller", "request_id"),
    )
    op.create_table(
        "used_nonces",
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "value"),
    )
    op.create_index("ix_used_nonces_expiry", "used_nonces", ["expires_at"])


def downgrade() -> None:
    for table in (
        "used_nonces",
        "idempotency",
        "outbox",
        "audit_head",
        "audit_events",
        "resource_history",
        "resources",
    ):
        op.drop_table(table)
