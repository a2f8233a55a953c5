"""Clusters an operator can run for real: per-cluster TLS and Prometheus credentials, and
a record of the Hopsworks signing keys hopsplane made.

- ``hopsworks_clusters.ca_bundle``: PEM of the CA(s) the Hopsworks API's certificate is
  checked against (public material, kept as text); NULL: the system's trust store.
- ``hopsworks_clusters.prometheus_ca_bundle``: the same for the cluster's Prometheus.
- ``hopsworks_clusters.prometheus_auth``: Fernet ciphertext (like the API keys) of a JSON
  object, ``{"bearer": token}`` or ``{"username": ..., "password": ...}``; NULL: none.
- ``hopsplane.hopsworks_signing_keys``: the name of every signing key hopsplane makes with
  ``POST /jwt`` (written before the call, removed once ``DELETE /jwt/key`` succeeded).
  Hopsworks offers no call that lists signing keys, so a key whose deletion failed is found
  here and deleted by the sweep once its token has expired.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
ALTER TABLE hopsworks_clusters
  ADD COLUMN ca_bundle text,
  ADD COLUMN prometheus_ca_bundle text,
  ADD COLUMN prometheus_auth text;

CREATE TABLE hopsplane.hopsworks_signing_keys (
  key_name text PRIMARY KEY CHECK (key_name LIKE 'hopsplane-%'),
  cluster_id uuid NOT NULL
    CONSTRAINT hopsworks_signing_keys_cluster_id_fkey
    REFERENCES hopsworks_clusters (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hopsworks_signing_keys_created_idx
  ON hopsplane.hopsworks_signing_keys (created_at);
"""

DOWNGRADE = """
DROP TABLE hopsplane.hopsworks_signing_keys;
ALTER TABLE hopsworks_clusters
  DROP COLUMN prometheus_auth,
  DROP COLUMN prometheus_ca_bundle,
  DROP COLUMN ca_bundle;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
