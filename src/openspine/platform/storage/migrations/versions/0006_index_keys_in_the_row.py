"""Each resource keeps its search keys in its own row; the index by resource is dropped.

An update replaces a resource's search keys, and used to find the keys it replaces through
``ix_search_index_resource``, a second B-tree over ``search_index`` by ``(resource_type, id)``.
Every key inserted or deleted changed both B-trees: for a dozen MESH sends, 5 of the 36 pages a
commit wrote (ADR 0022), and a bulk load's merge had to build that index afresh (ADR 0020). The
keys now also live in the resource's row (``index_keys``: a JSON array of ``[param, value]``
pairs, NULL for none), which an update reads anyway, and the index by resource is gone.

Keys of an unfinished bulk load (``search_index_pending``) are copied into their rows too, so
that their merge needs nothing else.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE resources ADD COLUMN index_keys TEXT")
    if op.get_bind().dialect.name == "sqlite":
        # Grouped once (a sort of every key), then each row found by its key: not a scan of
        # the index for each resource.
        op.execute(
            "CREATE TEMP TABLE keys_by_resource AS SELECT resource_type, id,"
            " json_group_array(json_array(param, value)) AS keys"
            " FROM (SELECT resource_type, id, param, value FROM search_index"
            " UNION ALL SELECT resource_type, id, param, value FROM search_index_pending)"
            " GROUP BY resource_type, id"
        )
        op.execute(
            "UPDATE resources SET index_keys = k.keys FROM keys_by_resource AS k"
            " WHERE k.resource_type = resources.resource_type AND k.id = resources.id"
        )
        op.execute("DROP TABLE keys_by_resource")
    else:
        op.execute(
            "UPDATE resources SET index_keys = k.keys FROM (SELECT resource_type, id,"
            " json_agg(json_build_array(param, value))::text AS keys"
            " FROM (SELECT resource_type, id, param, value FROM search_index"
            " UNION ALL SELECT resource_type, id, param, value FROM search_index_pending)"
            " AS every_key GROUP BY resource_type, id) AS k"
            " WHERE k.resource_type = resources.resource_type AND k.id = resources.id"
        )
    op.drop_index("ix_search_index_resource", table_name="search_index")


def downgrade() -> None:
    op.create_index("ix_search_index_resource", "search_index", ["resource_type", "id"])
    op.execute("ALTER TABLE resources DROP COLUMN index_keys")
