"""API keys of customers and the audit log: hopsplane.api_keys, hopsplane.audit_log.

A customer's script reads its own account with an API key instead of a person's session:
the table keeps the key's SHA-256 (never the key), the account it acts for, its scopes,
its expiry, when it was revoked and when it was last used. A key is a 160-bit random
secret, so a fast hash is enough: nobody can guess a preimage, and a slow hash (made for
low-entropy passwords) would only cost CPU on every request.

The audit log records every decision that changes money, access or compute, once, in the
transaction of the decision: who (person, API key, operator CLI, system job), what, on
which account, before and after, when and from where. Like the ledger it is append-only:
a trigger refuses UPDATE, DELETE and TRUNCATE. No foreign keys: a row outlives the user,
the key or the account it names, and a cascade would be an UPDATE/DELETE the trigger
refuses. Machinery, so both live in the `hopsplane` schema, outside the six tables.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.api_keys (
  id                UUID NOT NULL DEFAULT gen_random_uuid(),
  account_owner_id  TEXT NOT NULL,
  name              TEXT NOT NULL,
  token_sha256      TEXT NOT NULL,
  display_prefix    TEXT NOT NULL,
  scopes            TEXT[] NOT NULL,
  created_by        TEXT NOT NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at        TIMESTAMPTZ NOT NULL,
  revoked_at        TIMESTAMPTZ,
  last_used_at      TIMESTAMPTZ,
  CONSTRAINT api_keys_pkey PRIMARY KEY (id),
  CONSTRAINT api_keys_token_sha256_key UNIQUE (token_sha256),
  CONSTRAINT api_keys_account_owner_id_fkey FOREIGN KEY (account_owner_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
  CONSTRAINT api_keys_scopes_known CHECK (
    cardinality(scopes) >= 1 AND scopes <@ ARRAY['balance:read', 'usage:read', 'ledger:read',
      'team:read', 'webhooks:manage']::text[]),
  CONSTRAINT api_keys_expires_after_created CHECK (expires_at > created_at)
);
CREATE INDEX api_keys_account_idx ON hopsplane.api_keys (account_owner_id, created_at);

CREATE TABLE hopsplane.audit_log (
  id                BIGINT GENERATED ALWAYS AS IDENTITY,
  occurred_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  actor_kind        TEXT NOT NULL,
  actor_id          TEXT NOT NULL,
  action            TEXT NOT NULL,
  account_owner_id  TEXT,
  target            TEXT,
  before            JSONB,
  after             JSONB,
  source            TEXT NOT NULL,
  request_id        TEXT,
  CONSTRAINT audit_log_pkey PRIMARY KEY (id),
  CONSTRAINT audit_log_actor_kind CHECK (
    actor_kind IN ('person', 'api_key', 'operator_cli', 'system')),
  CONSTRAINT audit_log_action_shape CHECK (action ~ '^[a-z_]+(\\.[a-z_]+)+$')
);
CREATE INDEX audit_log_account_idx ON hopsplane.audit_log (account_owner_id, id);
CREATE INDEX audit_log_occurred_idx ON hopsplane.audit_log (occurred_at);

CREATE FUNCTION hopsplane.refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'integrity_constraint_violation',
          HINT = 'record a new entry instead';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON hopsplane.audit_log
  FOR EACH ROW EXECUTE FUNCTION hopsplane.refuse_audit_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hopsplane.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION hopsplane.refuse_audit_change();
"""

DOWNGRADE = """
DROP TABLE hopsplane.audit_log;
DROP FUNCTION hopsplane.refuse_audit_change();
DROP TABLE hopsplane.api_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
