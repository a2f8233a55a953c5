"""Clusters: current_users maintained by the database, one cluster per account; the job queue.

- account_clusters: one cluster per account (unique account_owner_id); a move is an UPDATE.
- hopsworks_clusters.current_users is the number of accounts assigned to the cluster, kept
  by a trigger on account_clusters (so it cannot drift), refused when written by anything
  else, and never above max_users (CHECK).
- hopsplane.jobs: the PostgreSQL-backed job queue of `hopsplane worker` (claimed with
  FOR UPDATE SKIP LOCKED; periodic slots deduplicated by idempotency key).

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE UNIQUE INDEX account_clusters_one_cluster_per_account
  ON account_clusters (account_owner_id);

CREATE FUNCTION hopsplane.count_cluster_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE hopsworks_clusters SET current_users = current_users - 1
     WHERE id = OLD.hopsworks_cluster_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    UPDATE hopsworks_clusters SET current_users = current_users + 1
     WHERE id = NEW.hopsworks_cluster_id;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION hopsplane.count_cluster_accounts() IS
  'Keeps hopsworks_clusters.current_users equal to the number of assigned accounts.';

CREATE TRIGGER account_clusters_count
  AFTER INSERT OR DELETE OR UPDATE OF hopsworks_cluster_id ON account_clusters
  FOR EACH ROW EXECUTE FUNCTION hopsplane.count_cluster_accounts();

CREATE FUNCTION hopsplane.guard_current_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.current_users := 0;
  ELSIF NEW.current_users IS DISTINCT FROM OLD.current_users AND pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'hopsworks_clusters.current_users is derived from account_clusters'
      USING ERRCODE = 'integrity_constraint_violation',
            HINT = 'assign or move accounts instead';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER hopsworks_clusters_current_users_derived
  BEFORE INSERT OR UPDATE ON hopsworks_clusters
  FOR EACH ROW EXECUTE FUNCTION hopsplane.guard_current_users();

-- Bring existing counts in line with the facts (depth 1 would be refused by the guard).
ALTER TABLE hopsworks_clusters DISABLE TRIGGER hopsworks_clusters_current_users_derived;
UPDATE hopsworks_clusters c
   SET current_users = (SELECT count(*) FROM account_clusters a
                         WHERE a.hopsworks_cluster_id = c.id);
ALTER TABLE hopsworks_clusters ENABLE TRIGGER hopsworks_clusters_current_users_derived;

ALTER TABLE hopsworks_clusters ADD CONSTRAINT hopsworks_clusters_not_overfull
  CHECK (current_users <= max_users) NOT VALID;

CREATE TABLE hopsplane.jobs (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task             TEXT NOT NULL,
  args             JSONB NOT NULL DEFAULT '{}'::jsonb,
  lock_key         TEXT,
  idempotency_key  TEXT,
  status           TEXT NOT NULL DEFAULT 'queued',
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL DEFAULT 20,
  run_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at      TIMESTAMPTZ,
  last_error       TEXT,
  CONSTRAINT jobs_idempotency_key_key UNIQUE (idempotency_key),
  CONSTRAINT jobs_status_known CHECK (status IN ('queued', 'done', 'failed')),
  CONSTRAINT jobs_task_not_empty CHECK (task <> ''),
  CONSTRAINT jobs_args_object CHECK (jsonb_typeof(args) = 'object'),
  CONSTRAINT jobs_attempts_range CHECK (attempts >= 0 AND max_attempts >= 1),
  CONSTRAINT jobs_finished_when_final CHECK ((status = 'queued') = (finished_at IS NULL))
);
CREATE INDEX jobs_due_idx ON hopsplane.jobs (run_at, id) WHERE status = 'queued';
"""

DOWNGRADE = """
DROP TABLE hopsplane.jobs;
ALTER TABLE hopsworks_clusters DROP CONSTRAINT hopsworks_clusters_not_overfull;
DROP TRIGGER hopsworks_clusters_current_users_derived ON hopsworks_clusters;
DROP FUNCTION hopsplane.guard_current_users();
DROP TRIGGER account_clusters_count ON account_clusters;
DROP FUNCTION hopsplane.count_cluster_accounts();
DROP INDEX account_clusters_one_cluster_per_account;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
