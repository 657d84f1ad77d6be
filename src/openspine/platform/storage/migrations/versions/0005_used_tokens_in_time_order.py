"""Used tokens are keyed by their expiry first: each commit appends to one end of one B-tree.

A used token (a MESH authorisation token, an OAuth client assertion's ``jti``) was keyed by
``(issuer, value)``, and its value is random: every token went to a random leaf of the table's
key (and, on SQLite, to the rowid table behind it and to the expiry index), so a group commit of
a dozen MESH requests dirtied a dozen leaves (about 12 of the 44 pages such a commit wrote). The
key is now ``(expires_at, issuer, value)``: tokens arrive in nearly the order of their expiry, the
purge deletes a range from the front, and the expiry index is gone. On SQLite the table has no
rowid: one B-tree instead of three.

A replayed token is still refused: both kinds derive ``expires_at`` from the signed token (the
MESH token's timestamp, the assertion's ``exp``), so the same token always has the same key
(ADR 0022). Rows already recorded are kept: a token used before the upgrade stays used.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = "issuer VARCHAR(200) NOT NULL, value VARCHAR(200) NOT NULL, expires_at BIGINT NOT NULL"


def _rekey(key: str, *, rowid: bool) -> None:
    """Give ``used_nonces`` the primary key ``key``, keeping its rows (``rowid``: SQLite only)."""
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE used_nonces DROP CONSTRAINT used_nonces_pkey")
        op.execute(f"ALTER TABLE used_nonces ADD PRIMARY KEY ({key})")
        return
    # SQLite cannot change a table's key: copy the rows into a table built with the new one.
    suffix = "" if rowid else " WITHOUT ROWID"
    op.execute(f"CREATE TABLE used_nonces_rebuilt ({_COLUMNS}, PRIMARY KEY ({key})){suffix}")
    op.execute(
        "INSERT INTO used_nonces_rebuilt (issuer, value, expires_at)"
        " SELECT issuer, value, expires_at FROM used_nonces"
    )
    op.execute("DROP TABLE used_nonces")  # and its expiry index with it
    op.execute("ALTER TABLE used_nonces_rebuilt RENAME TO used_nonces")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":  # SQLite's rebuild drops the index with the table
        op.drop_index("ix_used_nonces_expiry", table_name="used_nonces")
    _rekey("expires_at, issuer, value", rowid=False)


def downgrade() -> None:
    # Two rows that differ only in their expiry cannot both stay: the older one goes.
    op.execute(
        "DELETE FROM used_nonces WHERE EXISTS (SELECT 1 FROM used_nonces AS later"
        " WHERE later.issuer = used_nonces.issuer AND later.value = used_nonces.value"
        " AND later.expires_at > used_nonces.expires_at)"
    )
    _rekey("issuer, value", rowid=True)
    op.create_index("ix_used_nonces_expiry", "used_nonces", ["expires_at"])
