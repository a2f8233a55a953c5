"""Provisioning that works on a real Hopsworks: the AUTH key of a cluster, and
what a suspension stopped.

- hopsworks_clusters.auth_api_key: a second Hopsworks API key, with only the AUTH scope,
  that signs short-lived tokens of project owners (POST /jwt) for the JWT-only member,
  job, Jupyter and serving endpoints. Fernet ciphertext, like api_key; NULL until an
  operator sets it (provisioning then reports an operator error on the cluster).
- hopsplane.stopped_workloads: the job executions, Jupyter servers and model deployments
  a suspension stopped, so that the owner can see (and restart by hand) what was stopped.
  One row per (suspension, workload): a retried stop job records each workload once.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
ALTER TABLE hopsworks_clusters ADD COLUMN auth_api_key TEXT,
  ADD CONSTRAINT hopsworks_clusters_auth_api_key_encrypted
    CHECK (auth_api_key IS NULL OR auth_api_key LIKE 'gAAAAA%');

CREATE TABLE hopsplane.stopped_workloads (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_owner_id TEXT NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  cluster_id       UUID NOT NULL REFERENCES public.hopsworks_clusters (id) ON DELETE CASCADE,
  project_id       INTEGER NOT NULL,
  suspension       TEXT NOT NULL,
  kind             TEXT NOT NULL,
  ref              TEXT NOT NULL,
  name             TEXT NOT NULL,
  hopsworks_user   TEXT,
  stopped_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT stopped_workloads_kind CHECK (kind IN ('job_execution', 'jupyter', 'deployment')),
  CONSTRAINT stopped_workloads_once UNIQUE (account_owner_id, suspension, kind, ref)
);
CREATE INDEX stopped_workloads_account_idx
  ON hopsplane.stopped_workloads (account_owner_id, stopped_at DESC, id DESC);
"""

DOWNGRADE = r"""
DROP TABLE hopsplane.stopped_workloads;
ALTER TABLE hopsworks_clusters DROP COLUMN auth_api_key;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
