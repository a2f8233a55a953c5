"""Stripe webhook event log.

hopsplane.stripe_events keeps every Stripe event once, by its id: a delivery is inserted
with ON CONFLICT DO NOTHING, and only the delivery that inserted the row processes it, in
the same transaction. See docs/schema.md ("hopsplane.stripe_events").

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE TABLE hopsplane.stripe_events (
  id                TEXT PRIMARY KEY,
  type              TEXT NOT NULL,
  livemode          BOOLEAN NOT NULL,
  stripe_created_at TIMESTAMPTZ NOT NULL,
  received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  processed_at      TIMESTAMPTZ,
  status            TEXT NOT NULL DEFAULT 'received',
  object_id         TEXT,
  account_owner_id  TEXT,
  error             TEXT,
  payload           JSONB NOT NULL,
  CONSTRAINT stripe_events_id_shape CHECK (id ~ '^evt_[A-Za-z0-9_]+$'),
  CONSTRAINT stripe_events_status_known
    CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
  CONSTRAINT stripe_events_processed_when_done
    CHECK ((status = 'received') = (processed_at IS NULL)),
  CONSTRAINT stripe_events_error_only_when_failed CHECK ((status = 'failed') = (error IS NOT NULL)),
  CONSTRAINT stripe_events_payload_object CHECK (jsonb_typeof(payload) = 'object')
);
CREATE INDEX stripe_events_object_idx ON hopsplane.stripe_events (object_id)
  WHERE object_id IS NOT NULL;
CREATE INDEX stripe_events_failed_idx ON hopsplane.stripe_events (received_at)
  WHERE status = 'failed';
COMMENT ON TABLE hopsplane.stripe_events IS
  'Every Stripe webhook event once, by id; processed in the transaction that stored it.';
"""

DOWNGRADE = "DROP TABLE hopsplane.stripe_events;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
