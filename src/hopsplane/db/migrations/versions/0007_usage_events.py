"""Usage metering machinery (issue 6): raw usage events and cluster ingestion tokens.

- hopsplane.usage_events: every usage event ever received, by its unique id (a repeat is
  ignored), with what it resolved to (account owner and attributed user) or why it could
  not be resolved yet (status 'unmatched', kept and reported, folded in later).
- hopsplane.usage_ingest_tokens: the SHA-256 of each cluster's ingestion token.
- hopsplane.jsonb_sum_merge / hopsplane.usage_raw_merge: add two {key: number} objects
  key by key (exactly, as numeric); used by the set-based fold into usage_tracking.
- hopsplane.usage_resolve: which account an event's account / project / namespace names.

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0001"
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

CREATE TABLE hopsplane.usage_ingest_tokens (
  cluster_id   UUID PRIMARY KEY REFERENCES public.hopsworks_clusters (id) ON DELETE CASCADE,
  token_sha256 TEXT NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT usage_ingest_tokens_token_sha256_key UNIQUE (token_sha256),
  CONSTRAINT usage_ingest_tokens_is_sha256 CHECK (token_sha256 ~ '^[0-9a-f]{64}$')
);

CREATE FUNCTION hopsplane.jsonb_sum_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT COALESCE(jsonb_object_agg(key, total), '{}'::jsonb)
  FROM (SELECT key, sum(value::numeric) AS total
        FROM (SELECT * FROM jsonb_each_text(COALESCE(a, '{}'::jsonb))
              UNION ALL
              SELECT * FROM jsonb_each_text(COALESCE(b, '{}'::jsonb))) AS both_sides
        GROUP BY key) AS summed
  WHERE total <> 0
$$;
COMMENT ON FUNCTION hopsplane.jsonb_sum_merge(jsonb, jsonb) IS
  'Add two {key: number} objects key by key (numeric, exact); keys that sum to 0 are dropped.';

CREATE FUNCTION hopsplane.usage_raw_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT COALESCE(a, '{}'::jsonb) || jsonb_build_object(
    'units_by_source',
      hopsplane.jsonb_sum_merge(a -> 'units_by_source', b -> 'units_by_source'),
    'cpu_seconds_by_source',
      hopsplane.jsonb_sum_merge(a -> 'cpu_seconds_by_source', b -> 'cpu_seconds_by_source'),
    'events_by_source',
      hopsplane.jsonb_sum_merge(a -> 'events_by_source', b -> 'events_by_source'))
$$;
COMMENT ON FUNCTION hopsplane.usage_raw_merge(jsonb, jsonb) IS
  'Merge the per-source totals of usage_tracking.raw_metrics; other keys of a are kept.';

CREATE FUNCTION hopsplane.usage_resolve(
  p_account_id text, p_project_id integer, p_namespace text, p_cluster_id uuid)
RETURNS TABLE (owner_id text, member_id text, candidates bigint)
LANGUAGE sql STABLE AS $$
  SELECT min(c.owner_id), min(c.member_id), count(DISTINCT c.owner_id)
  FROM (
    SELECT COALESCE(u.account_owner_id, u.id) AS owner_id,
           CASE WHEN u.account_owner_id IS NOT NULL THEN u.id END AS member_id
    FROM public.users u
    WHERE p_account_id IS NOT NULL AND u.id = p_account_id
    UNION ALL
    SELECT COALESCE(u.account_owner_id, u.id), NULL
    FROM public.users u
    WHERE p_project_id IS NOT NULL AND u.hopsworks_project_id = p_project_id
    UNION ALL
    SELECT u.id, NULL
    FROM public.users u
    WHERE p_namespace IS NOT NULL AND u.account_owner_id IS NULL
      AND replace(lower(u.metadata ->> 'hopsworks_project_name'), '_', '-') = p_namespace
  ) AS c
  WHERE p_cluster_id IS NULL OR EXISTS (
    SELECT 1 FROM public.account_clusters ac
    WHERE ac.account_owner_id = c.owner_id AND ac.hopsworks_cluster_id = p_cluster_id)
$$;
COMMENT ON FUNCTION hopsplane.usage_resolve(text, integer, text, uuid) IS
  'The account owner(s) an event names (by account, project or namespace), restricted to '
  'the accounts assigned to the event''s cluster when it has one.';
"""

DOWNGRADE = """
DROP FUNCTION hopsplane.usage_resolve(text, integer, text, uuid);
DROP FUNCTION hopsplane.usage_raw_merge(jsonb, jsonb);
DROP FUNCTION hopsplane.jsonb_sum_merge(jsonb, jsonb);
DROP TABLE hopsplane.usage_ingest_tokens;
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
