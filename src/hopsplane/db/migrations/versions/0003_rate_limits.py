"""Rate-limit counters shared by every server process.

``hopsplane.rate_limits`` holds one row per (bucket, fixed window): a counter bumped with
``INSERT ... ON CONFLICT DO UPDATE`` in its own short transaction, so several API processes
share one limit and a refused request (rolled back) still counts. Old windows are deleted
by the same code path (rows older than a day), so the table stays small.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.rate_limits (
  bucket       TEXT NOT NULL,
  window_start TIMESTAMPTZ NOT NULL,
  hits         INTEGER NOT NULL DEFAULT 1,
  CONSTRAINT rate_limits_pkey PRIMARY KEY (bucket, window_start),
  CONSTRAINT rate_limits_bucket_length CHECK (length(bucket) BETWEEN 1 AND 300),
  CONSTRAINT rate_limits_hits_positive CHECK (hits > 0)
);
CREATE INDEX rate_limits_window_start_idx ON hopsplane.rate_limits (window_start);
"""

DOWNGRADE = "DROP TABLE hopsplane.rate_limits;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
