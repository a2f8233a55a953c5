"""Published read model of the clusters domain: the namespaces of "stray" projects.

A user of an account may own Hopsworks projects besides the account's (made before
hopsplane limited their project quota, or by hand on the cluster). The clusters domain
records them on the owner (``users.metadata -> 'hopsworks_stray_projects'``, a list of
``{id, name, namespace, creator}``); usage collected in such a namespace is the account's
and is billed to its owner instead of being left unmatched. The usage fold reads them
through this view, as it reads ``hopsplane.hopsworks_identities`` (revision 0020):

- ``hopsplane.stray_project_namespaces``: ``account_id`` (the owner), ``project_id``,
  ``namespace``.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE VIEW hopsplane.stray_project_namespaces AS
SELECT u.id AS account_id,
       CAST(p ->> 'id' AS integer) AS project_id,
       p ->> 'namespace' AS namespace
FROM public.users u
CROSS JOIN LATERAL jsonb_array_elements(
  CASE WHEN jsonb_typeof(u.metadata -> 'hopsworks_stray_projects') = 'array'
       THEN u.metadata -> 'hopsworks_stray_projects' ELSE '[]'::jsonb END) p
WHERE u.account_owner_id IS NULL AND p ->> 'namespace' IS NOT NULL;
"""

DOWNGRADE = """
DROP VIEW hopsplane.stray_project_namespaces;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
