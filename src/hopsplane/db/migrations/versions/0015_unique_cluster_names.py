"""Cluster names are unique, ignoring case.

Operators tell clusters apart by name (`clusters list`, the admin pages); two clusters
both called "eu-1" were accepted silently. A unique index on lower(name) refuses the
second. Clusters already sharing a name keep the oldest-looking one (lowest id) as it is
and the others get " (<first 8 characters of their id>)" appended, so the upgrade never
fails on existing data; the revision logs nothing secret (names only).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        UPDATE hopsworks_clusters c
           SET name = c.name || ' (' || left(c.id::text, 8) || ')'
          FROM (SELECT id, row_number() OVER (PARTITION BY lower(name) ORDER BY id) AS n
                  FROM hopsworks_clusters) d
         WHERE d.id = c.id AND d.n > 1
    """)
    op.execute(
        "CREATE UNIQUE INDEX hopsworks_clusters_name_key ON hopsworks_clusters (lower(name))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX hopsworks_clusters_name_key")
