"""Published read models: views through which a domain's repository reads what another
domain owns, so that every repository names only its own tables.

Set-based statements (the usage fold, the billing run's standing, the ledger's owner
check and lock, the balance-event dispatch) must join an account to its people in one
round trip; a service call per row would cost a round trip per row. Instead the owning
domain publishes a view of exactly the columns others need, and others read the view:

- ``hopsplane.account_members`` (accounts): one row per user: ``user_id``, the
  ``account_id`` it belongs to (its owner's id, its own for an owner), ``is_owner``,
  ``email`` and ``name``.
- ``hopsplane.hopsworks_identities`` (clusters): one row per user: ``user_id``,
  ``account_id``, the Hopsworks ``project_id`` and ``username`` the clusters domain stored,
  and for an owner the account's Kubernetes ``namespace`` (as Hopsworks named it, else its
  project name lowercased, '_' -> '-'); NULL for a member.
- ``hopsplane.cluster_assignments`` (clusters): ``account_id``, ``cluster_id``.
- ``hopsplane.cluster_directory`` (clusters): ``id``, ``name``, ``status``, ``metadata``
  of every cluster (no credentials).

They are plain single-table views (no aggregation, no DISTINCT), so the planner inlines
them into the statement that reads them and uses the tables' indexes as before
(benchmarks/usage_ingest.py and benchmarks/ledger.py measure it). The owning domain may
change its tables freely as long as it keeps its view's columns.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE VIEW hopsplane.account_members AS
SELECT u.id AS user_id,
       COALESCE(u.account_owner_id, u.id) AS account_id,
       u.account_owner_id IS NULL AS is_owner,
       u.email,
       u.name
FROM public.users u;

CREATE VIEW hopsplane.hopsworks_identities AS
SELECT u.id AS user_id,
       COALESCE(u.account_owner_id, u.id) AS account_id,
       u.hopsworks_project_id AS project_id,
       u.hopsworks_username AS username,
       CASE WHEN u.account_owner_id IS NULL THEN
         COALESCE(u.metadata ->> 'hopsworks_namespace',
                  replace(lower(u.metadata ->> 'hopsworks_project_name'), '_', '-'))
       END AS namespace
FROM public.users u;

CREATE VIEW hopsplane.cluster_assignments AS
SELECT a.account_owner_id AS account_id, a.hopsworks_cluster_id AS cluster_id
FROM public.account_clusters a;

CREATE VIEW hopsplane.cluster_directory AS
SELECT c.id, c.name, c.status, c.metadata
FROM public.hopsworks_clusters c;
"""

DOWNGRADE = """
DROP VIEW hopsplane.cluster_directory;
DROP VIEW hopsplane.cluster_assignments;
DROP VIEW hopsplane.hopsworks_identities;
DROP VIEW hopsplane.account_members;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
