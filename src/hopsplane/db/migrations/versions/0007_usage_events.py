"""Usage metering machinery: raw usage events and cluster ingestion tokens.

- hopsplane.usage_events: every usage event ever received, by its unique id (a repeat is
  ignored), with what it resolved to (account owner and attributed user) or why it could
  not be resolved yet (status 'unmatched', kept and reported, folded in later).
- hopsplane.usage_ingest_tokens: the SHA-256 of each cluster's ingestion token.

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE TABLE hopsplane.usage_events (
  event_id           TEXT PRIMARY KEY,
  source             TEXT NOT NULL,
  cluster_id         UUID,
  account_id         TEXT,
  project_id         INTEGER,
  namespace          TEXT,
  user_id            TEXT,
  occurred_at        TIMESTAMPTZ NOT NULL,
  day                DATE NOT NULL
                       GENERATED ALWAYS AS ((timezone('UTC', occurred_at))::date) STORED,
  compute_units      NUMERIC(18,4) NOT NULL,
  cpu_seconds        NUMERIC,
  status             TEXT NOT NULL,
  problem            TEXT,
  account_owner_id   TEXT,
  attributed_user_id TEXT,
  revision           INTEGER NOT NULL DEFAULT 1,
  received_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT usage_events_id_length CHECK (length(event_id) BETWEEN 1 AND 255),
  CONSTRAINT usage_events_one_subject CHECK (num_nonnulls(account_id, project_id, namespace) = 1),
  CONSTRAINT usage_events_namespace_needs_cluster
    CHECK (namespace IS NULL OR cluster_id IS NOT NULL),
  CONSTRAINT usage_events_units_nonneg CHECK (compute_units >= 0),
  CONSTRAINT usage_events_cpu_seconds_nonneg CHECK (cpu_seconds >= 0),
  CONSTRAINT usage_events_status_known CHECK (status IN ('folded', 'unmatched')),
  CONSTRAINT usage_events_folded_is_resolved CHECK (
    (status = 'folded') = (account_owner_id IS NOT NULL AND attributed_user_id IS NOT NULL)),
  CONSTRAINT usage_events_unmatched_says_why CHECK ((status = 'unmatched') = (problem IS NOT NULL)),
  CONSTRAINT usage_events_revision_positive CHECK (revision >= 1)
);
CREATE INDEX usage_events_unmatched_idx ON hopsplane.usage_events (event_id)
  WHERE status = 'unmatched';
CREATE INDEX usage_events_collected_idx ON hopsplane.usage_events (source, day)
  WHERE namespace IS NOT NULL;

-- Every fold rewrites the (account, day) rows it touches. Free space on each page lets the
-- rewrite be a HOT update (no new index entries, old versions pruned in place); without
-- it every rewrite adds index entries and lookups slow down until vacuum runs.
ALTER TABLE public.usage_tracking SET (fillfactor = 40);

CREATE TABLE hopsplane.usage_ingest_tokens (
  cluster_id   UUID PRIMARY KEY REFERENCES public.hopsworks_clusters (id) ON DELETE CASCADE,
  token_sha256 TEXT NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT usage_ingest_tokens_token_sha256_key UNIQUE (token_sha256),
  CONSTRAINT usage_ingest_tokens_is_sha256 CHECK (token_sha256 ~ '^[0-9a-f]{64}$')
);
"""

DOWNGRADE = """
DROP TABLE hopsplane.usage_ingest_tokens;
ALTER TABLE public.usage_tracking RESET (fillfactor);
DROP TABLE hopsplane.usage_events;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    rows = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM hopsplane.usage_events WHERE status = 'folded'"
    ).scalar()
    if rows:
        raise RuntimeError(
            f"refusing to downgrade below 0007: hopsplane.usage_events holds {rows} folded "
            "events that usage_tracking was computed from (back them up first)"
        )
    op.execute(DOWNGRADE)
