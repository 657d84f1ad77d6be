"""Search index: ordered (parameter, value) keys per resource, kept in the resource's commit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Range scans compare values byte by byte; PostgreSQL's default collation would not.
ORDERED_TEXT = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(16), nullable=False),
        sa.Column("value", ORDERED_TEXT, nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "param", "value", "id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_search_index_resource", "search_index", ["resource_type", "id"])


def downgrade() -> None:
    op.drop_table("search_index")
