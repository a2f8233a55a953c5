"""Browser sessions kept server-side: hopsplane.sessions.

The console's session cookie used to carry who signed in, signed, valid until it expired:
signing out deleted the browser's copy, but a copied cookie stayed valid. The cookie now
carries only a random session token (signed with the key list of HOPSPLANE_SECRET_KEY);
this table holds its SHA-256 (never the token), who it belongs to, the identity it was
signed in with, when it expires and when it was revoked. Sign-out revokes the row, an
admin's "sign out everywhere" revokes all rows of a user, and a revoked or expired row
signs nobody in. Machinery, so it lives in the `hopsplane` schema, outside the six tables.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.sessions (
  id             UUID NOT NULL DEFAULT gen_random_uuid(),
  token_sha256   TEXT NOT NULL,
  user_id        TEXT NOT NULL,
  sub            TEXT NOT NULL,
  email          TEXT,
  email_verified BOOLEAN NOT NULL DEFAULT false,
  name           TEXT,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at     TIMESTAMPTZ NOT NULL,
  revoked_at     TIMESTAMPTZ,
  CONSTRAINT sessions_pkey PRIMARY KEY (id),
  CONSTRAINT sessions_token_sha256_key UNIQUE (token_sha256),
  CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT sessions_expires_after_created CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user_live_idx ON hopsplane.sessions (user_id)
  WHERE revoked_at IS NULL;
"""

DOWNGRADE = "DROP TABLE hopsplane.sessions;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
