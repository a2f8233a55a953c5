"""Organizations, as the plan's "Future: Organizations" sketches them:
``organizations`` and ``organization_members`` with a role.

Billing stays with the account owner: an organization is a group of the owner's people
inside their account, for grouping and for delegating. ``owner_id`` is the account (the
owner's user id); a name is unique within an account, case-insensitively. A member's
``role`` is one of ``admin`` (manage invites and members, see usage and ledger, buy
credits), ``billing`` (see ledger and receipts, buy credits) or ``member``. Every person
of an organization belongs to its owner's account: the service checks it when adding, and
every read joins ``users`` on the account, so someone who has left the team holds no role
any more even before their row is cleaned up. Deleting a user or an organization deletes
its memberships.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE public.organizations (
  id         UUID NOT NULL DEFAULT gen_random_uuid(),
  name       TEXT NOT NULL,
  owner_id   TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT organizations_pkey PRIMARY KEY (id),
  CONSTRAINT organizations_owner_id_fkey FOREIGN KEY (owner_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT organizations_name_check
    CHECK (length(btrim(name)) BETWEEN 1 AND 100 AND name = btrim(name))
);
CREATE UNIQUE INDEX organizations_owner_name_key
  ON public.organizations (owner_id, lower(name));

CREATE TABLE public.organization_members (
  organization_id UUID NOT NULL,
  user_id         TEXT NOT NULL,
  role            TEXT NOT NULL,
  added_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT organization_members_pkey PRIMARY KEY (organization_id, user_id),
  CONSTRAINT organization_members_organization_id_fkey FOREIGN KEY (organization_id)
    REFERENCES public.organizations (id) ON DELETE CASCADE,
  CONSTRAINT organization_members_user_id_fkey FOREIGN KEY (user_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT organization_members_role_check CHECK (role IN ('admin', 'billing', 'member'))
);
CREATE INDEX organization_members_user_idx ON public.organization_members (user_id);
"""

DOWNGRADE = """
DROP TABLE public.organization_members;
DROP TABLE public.organizations;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
