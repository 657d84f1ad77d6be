"""Pending search keys: a bulk load's keys wait here, unordered, until merged in key order.

Inserting tens of millions of keys into the ordered ``search_index`` one chunk at a time dirties
pages all over its B-tree in every commit (loading slowed from 15k to 3k patients/s as a store
grew). A large bulk load appends its keys here instead and merges them once, sorted (ADR 0014).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No key at all: rows are only ever appended, then read once in full and deleted.
    op.create_table(
        "search_index_pending",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(16), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("search_index_pending")
