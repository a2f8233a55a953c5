"""Job leases: a running job is a row with a lease, not an open transaction.

Before, a worker ran each job inside the transaction that claimed it (the row lock was the
lease), so a long job (the billing run, usage collection) kept that transaction open and
idle for minutes. Now the claim is a short transaction that marks the job `running` with
a lease (`lease_owner`, a token of this claim, and `lease_expires_at`); the worker renews
the lease while the job runs and ends it when it records the outcome. A worker that dies
stops renewing: once the lease has expired, the job is claimable again.

- `jobs_status_known` admits `running`; `jobs_finished_when_final` reads "finished_at is
  set exactly when the job is done or failed"; `jobs_lease_when_running`: a running job
  has a lease, no other job has one.
- `jobs_one_running_per_lock_key`: jobs that share a lock key never run at the same time
  (before: a transaction-scoped advisory lock held by the claim transaction).
- `jobs_lease_idx`: the claim finds expired leases without a scan.
- `jobs_notify`: a statement trigger that wakes idle workers (NOTIFY hopsplane_jobs,
  delivered at commit) whenever jobs are inserted; workers still poll as the fallback.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
ALTER TABLE hopsplane.jobs
  ADD COLUMN lease_owner      TEXT,
  ADD COLUMN lease_expires_at TIMESTAMPTZ,
  ADD COLUMN started_at       TIMESTAMPTZ,
  DROP CONSTRAINT jobs_status_known,
  ADD CONSTRAINT jobs_status_known
    CHECK (status IN ('queued', 'running', 'done', 'failed')),
  DROP CONSTRAINT jobs_finished_when_final,
  ADD CONSTRAINT jobs_finished_when_final
    CHECK ((status IN ('queued', 'running')) = (finished_at IS NULL)),
  ADD CONSTRAINT jobs_lease_when_running
    CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL));

CREATE UNIQUE INDEX jobs_one_running_per_lock_key ON hopsplane.jobs (lock_key)
  WHERE status = 'running' AND lock_key IS NOT NULL;
CREATE INDEX jobs_lease_idx ON hopsplane.jobs (lease_expires_at) WHERE status = 'running';

CREATE FUNCTION hopsplane.notify_new_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hopsplane_jobs', '');
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION hopsplane.notify_new_jobs() IS
  'Wakes idle `hopsplane worker` processes (LISTEN hopsplane_jobs) when jobs are inserted.';
CREATE TRIGGER jobs_notify AFTER INSERT ON hopsplane.jobs
  FOR EACH STATEMENT EXECUTE FUNCTION hopsplane.notify_new_jobs();
"""

DOWNGRADE = r"""
DROP TRIGGER jobs_notify ON hopsplane.jobs;
DROP FUNCTION hopsplane.notify_new_jobs();
DROP INDEX hopsplane.jobs_lease_idx;
DROP INDEX hopsplane.jobs_one_running_per_lock_key;
-- a running job goes back to the queue (its worker's transaction is gone with the schema)
UPDATE hopsplane.jobs SET status = 'queued' WHERE status = 'running';
ALTER TABLE hopsplane.jobs
  DROP CONSTRAINT jobs_lease_when_running,
  DROP CONSTRAINT jobs_finished_when_final,
  ADD CONSTRAINT jobs_finished_when_final CHECK ((status = 'queued') = (finished_at IS NULL)),
  DROP CONSTRAINT jobs_status_known,
  ADD CONSTRAINT jobs_status_known CHECK (status IN ('queued', 'done', 'failed')),
  DROP COLUMN started_at,
  DROP COLUMN lease_expires_at,
  DROP COLUMN lease_owner;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
