"""The six core tables of the cleanup plan, with the plan's defects fixed.

Every departure from the plan is explained in docs/schema.md. In short:
- users: a member's owner must itself be an owner, enforced declaratively by a foreign
  key on (account_owner_id, false) -> (id, is_member); the same trick makes every
  account-level row (clusters, usage, ledger, invites) reference an owner.
- usage_tracking: room for real volumes (NUMERIC(18,4) units), a cost rounded once
  (half-up to the cent) and a breakdown that must sum to the units (CHECK).
- credits_ledger: per-account sequence, idempotency key, chain enforced by a self
  foreign key plus CHECKs, append-only triggers, overdraft only for usage.
- team_invites: a SHA-256 hash of the token, never the token.
- hopsworks_clusters: secrets must be Fernet ciphertext (CHECK on the token prefix).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
CREATE FUNCTION hopsplane.breakdown_total(b jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(b) = 'object'
              THEN (SELECT COALESCE(sum(value::numeric), 0) FROM jsonb_each_text(b))
         END
$$;
COMMENT ON FUNCTION hopsplane.breakdown_total(jsonb) IS
  'Sum of the numeric values of a JSON object; NULL when it is not an object.';

CREATE FUNCTION hopsplane.refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credits_ledger is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'integrity_constraint_violation',
          HINT = 'post a correcting entry instead';
END
$$;

CREATE TABLE users (
  id                      TEXT PRIMARY KEY,
  email                   TEXT NOT NULL,
  name                    TEXT,
  created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_login_at           TIMESTAMPTZ,
  account_owner_id        TEXT,
  stripe_customer_id      TEXT,
  stripe_test_customer_id TEXT,
  hopsworks_username      TEXT,
  hopsworks_project_id    INTEGER,
  is_platform_admin       BOOLEAN NOT NULL DEFAULT false,
  metadata                JSONB NOT NULL DEFAULT '{}'::jsonb,
  is_member               BOOLEAN NOT NULL
                            GENERATED ALWAYS AS (account_owner_id IS NOT NULL) STORED,
  owner_is_member         BOOLEAN
                            GENERATED ALWAYS AS (CASE WHEN account_owner_id IS NOT NULL
                                                      THEN false END) STORED,
  CONSTRAINT users_email_key UNIQUE (email),
  CONSTRAINT users_id_is_member_key UNIQUE (id, is_member),
  CONSTRAINT users_stripe_customer_id_key UNIQUE (stripe_customer_id),
  CONSTRAINT users_stripe_test_customer_id_key UNIQUE (stripe_test_customer_id),
  CONSTRAINT users_owner_is_owner_fkey FOREIGN KEY (account_owner_id, owner_is_member)
    REFERENCES users (id, is_member) ON DELETE RESTRICT,
  CONSTRAINT users_id_not_empty CHECK (id <> ''),
  CONSTRAINT users_email_shape CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
  CONSTRAINT users_not_own_owner CHECK (account_owner_id <> id),
  CONSTRAINT users_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX users_account_owner_id_idx ON users (account_owner_id)
  WHERE account_owner_id IS NOT NULL;
CREATE INDEX users_email_lower_idx ON users (lower(email));

CREATE TABLE hopsworks_clusters (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name          TEXT NOT NULL,
  api_url       TEXT NOT NULL,
  api_key       TEXT NOT NULL,
  max_users     INTEGER NOT NULL DEFAULT 100,
  current_users INTEGER NOT NULL DEFAULT 0,
  status        TEXT NOT NULL DEFAULT 'active',
  kubeconfig    TEXT,
  metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
  CONSTRAINT hopsworks_clusters_name_not_empty CHECK (name <> ''),
  CONSTRAINT hopsworks_clusters_api_url_http CHECK (api_url ~ '^https?://'),
  CONSTRAINT hopsworks_clusters_api_key_encrypted CHECK (api_key LIKE 'gAAAAA%'),
  CONSTRAINT hopsworks_clusters_kubeconfig_encrypted
    CHECK (kubeconfig IS NULL OR kubeconfig LIKE 'gAAAAA%'),
  CONSTRAINT hopsworks_clusters_max_users_nonneg CHECK (max_users >= 0),
  CONSTRAINT hopsworks_clusters_current_users_nonneg CHECK (current_users >= 0),
  CONSTRAINT hopsworks_clusters_status_known
    CHECK (status IN ('active', 'draining', 'disabled')),
  CONSTRAINT hopsworks_clusters_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE TABLE account_clusters (
  account_owner_id     TEXT NOT NULL,
  hopsworks_cluster_id UUID NOT NULL,
  assigned_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  assigned_by          TEXT,
  account_is_member    BOOLEAN NOT NULL GENERATED ALWAYS AS (false) STORED,
  CONSTRAINT account_clusters_pkey PRIMARY KEY (account_owner_id, hopsworks_cluster_id),
  CONSTRAINT account_clusters_owner_fkey FOREIGN KEY (account_owner_id, account_is_member)
    REFERENCES users (id, is_member) ON DELETE CASCADE,
  CONSTRAINT account_clusters_cluster_fkey FOREIGN KEY (hopsworks_cluster_id)
    REFERENCES hopsworks_clusters (id) ON DELETE RESTRICT
);
CREATE INDEX account_clusters_cluster_idx ON account_clusters (hopsworks_cluster_id);

CREATE TABLE usage_tracking (
  id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_owner_id TEXT NOT NULL,
  date             DATE NOT NULL,
  compute_units    NUMERIC(18,4) NOT NULL DEFAULT 0,
  unit_price       NUMERIC(12,6) NOT NULL DEFAULT 0.0001,
  total_cost       NUMERIC(16,2) GENERATED ALWAYS AS (round(compute_units * unit_price, 2)) STORED,
  user_breakdown   JSONB NOT NULL DEFAULT '{}'::jsonb,
  raw_metrics      JSONB NOT NULL DEFAULT '{}'::jsonb,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  account_is_member BOOLEAN NOT NULL GENERATED ALWAYS AS (false) STORED,
  CONSTRAINT usage_tracking_account_date_key UNIQUE (account_owner_id, date),
  CONSTRAINT usage_tracking_owner_fkey FOREIGN KEY (account_owner_id, account_is_member)
    REFERENCES users (id, is_member) ON DELETE RESTRICT,
  CONSTRAINT usage_tracking_units_nonneg CHECK (compute_units >= 0),
  CONSTRAINT usage_tracking_price_nonneg CHECK (unit_price >= 0),
  CONSTRAINT usage_tracking_breakdown_sums
    CHECK (hopsplane.breakdown_total(user_breakdown) IS NOT DISTINCT FROM compute_units),
  CONSTRAINT usage_tracking_raw_metrics_object CHECK (jsonb_typeof(raw_metrics) = 'object')
);

CREATE TABLE credits_ledger (
  id                       UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_owner_id         TEXT NOT NULL,
  seq                      BIGINT NOT NULL,
  amount                   NUMERIC(14,2) NOT NULL,
  balance                  NUMERIC(16,2) NOT NULL,
  type                     TEXT NOT NULL,
  description              TEXT,
  stripe_payment_intent_id TEXT,
  created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
  idempotency_key          TEXT NOT NULL,
  refund_of                UUID,
  prev_seq                 BIGINT,
  prev_balance             NUMERIC(16,2),
  account_is_member        BOOLEAN NOT NULL GENERATED ALWAYS AS (false) STORED,
  CONSTRAINT credits_ledger_idempotency_key_key UNIQUE (idempotency_key),
  CONSTRAINT credits_ledger_account_seq_key UNIQUE (account_owner_id, seq),
  CONSTRAINT credits_ledger_account_seq_balance_key UNIQUE (account_owner_id, seq, balance),
  CONSTRAINT credits_ledger_owner_fkey FOREIGN KEY (account_owner_id, account_is_member)
    REFERENCES users (id, is_member) ON DELETE RESTRICT,
  CONSTRAINT credits_ledger_prev_fkey FOREIGN KEY (account_owner_id, prev_seq, prev_balance)
    REFERENCES credits_ledger (account_owner_id, seq, balance),
  CONSTRAINT credits_ledger_refund_of_fkey FOREIGN KEY (refund_of)
    REFERENCES credits_ledger (id),
  CONSTRAINT credits_ledger_type_known CHECK (type IN ('purchase', 'usage', 'refund', 'grant')),
  CONSTRAINT credits_ledger_amount_nonzero CHECK (amount <> 0),
  CONSTRAINT credits_ledger_sign_matches_type CHECK (
    (type IN ('purchase', 'grant') AND amount > 0) OR (type IN ('usage', 'refund') AND amount < 0)),
  CONSTRAINT credits_ledger_chain CHECK (
    (seq = 1 AND prev_seq IS NULL AND prev_balance IS NULL AND balance = amount)
    OR (seq > 1 AND prev_seq = seq - 1 AND prev_balance IS NOT NULL
        AND balance = prev_balance + amount)),
  CONSTRAINT credits_ledger_only_usage_overdraws
    CHECK (type = 'usage' OR amount > 0 OR balance >= 0),
  CONSTRAINT credits_ledger_refund_reference CHECK ((type = 'refund') = (refund_of IS NOT NULL)),
  CONSTRAINT credits_ledger_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255)
);
CREATE UNIQUE INDEX credits_ledger_purchase_payment_intent_key
  ON credits_ledger (stripe_payment_intent_id)
  WHERE type = 'purchase' AND stripe_payment_intent_id IS NOT NULL;
CREATE INDEX credits_ledger_refund_of_idx ON credits_ledger (refund_of)
  WHERE refund_of IS NOT NULL;
CREATE TRIGGER credits_ledger_append_only BEFORE UPDATE OR DELETE ON credits_ledger
  FOR EACH ROW EXECUTE FUNCTION hopsplane.refuse_ledger_change();
CREATE TRIGGER credits_ledger_no_truncate BEFORE TRUNCATE ON credits_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION hopsplane.refuse_ledger_change();

CREATE TABLE team_invites (
  id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_owner_id  TEXT NOT NULL,
  email             TEXT NOT NULL,
  token_hash        TEXT NOT NULL,
  expires_at        TIMESTAMPTZ NOT NULL,
  accepted_at       TIMESTAMPTZ,
  accepted_by       TEXT,
  revoked_at        TIMESTAMPTZ,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  account_is_member BOOLEAN NOT NULL GENERATED ALWAYS AS (false) STORED,
  CONSTRAINT team_invites_token_hash_key UNIQUE (token_hash),
  CONSTRAINT team_invites_owner_fkey FOREIGN KEY (account_owner_id, account_is_member)
    REFERENCES users (id, is_member) ON DELETE CASCADE,
  CONSTRAINT team_invites_accepted_by_fkey FOREIGN KEY (accepted_by)
    REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT team_invites_token_is_sha256 CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT team_invites_email_shape CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
  CONSTRAINT team_invites_expiry_after_creation CHECK (expires_at > created_at),
  CONSTRAINT team_invites_accepted_or_revoked CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE UNIQUE INDEX team_invites_one_live_per_email
  ON team_invites (account_owner_id, lower(email))
  WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX team_invites_accepted_by_idx ON team_invites (accepted_by)
  WHERE accepted_by IS NOT NULL;
"""

DOWNGRADE = """
DROP TABLE team_invites;
DROP TABLE credits_ledger;
DROP TABLE usage_tracking;
DROP TABLE account_clusters;
DROP TABLE hopsworks_clusters;
DROP TABLE users;
DROP FUNCTION hopsplane.refuse_ledger_change();
DROP FUNCTION hopsplane.breakdown_total(jsonb);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # Never destroy money by accident: the ledger is kept forever.
    rows = op.get_bind().exec_driver_sql("SELECT count(*) FROM credits_ledger").scalar()
    if rows:
        raise RuntimeError(
            f"refusing to downgrade below 0001: credits_ledger holds {rows} entries "
            "(back the database up and drop it by hand if you really mean it)"
        )
    op.execute(DOWNGRADE)
