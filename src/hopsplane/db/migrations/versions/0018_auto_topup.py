"""Auto top-up: an owner's standing order to buy credit with a saved card when
usage takes the balance below a threshold.

- ``hopsplane.auto_topup``: one row per account: ``status`` (``off``, ``awaiting_card``,
  ``on``, ``paused`` with its reason), threshold and amount, the saved Stripe payment
  method, the consent in force, and the counters the limits are checked against (this
  UTC day's number of charges and money reserved, consecutive failures). The charging
  decision takes this row ``FOR UPDATE``, so two deciders never both pass a limit.
- ``hopsplane.auto_topup_consents``: what the owner agreed to (the exact terms text shown,
  who, when) and when it was revoked. Never updated except to set ``revoked_*``.
- ``hopsplane.auto_topup_attempts``: one row per threshold crossing (unique per account
  and the ledger key of the posting that crossed), its tries and outcome. At most one
  attempt of an account is active (partial unique index): a crossing while one is active
  starts nothing.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.auto_topup_consents (
  id               UUID NOT NULL DEFAULT gen_random_uuid(),
  account_owner_id TEXT NOT NULL,
  given_by         TEXT NOT NULL,
  given_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
  terms            TEXT NOT NULL,
  threshold        NUMERIC(12, 2) NOT NULL,
  amount           NUMERIC(12, 2) NOT NULL,
  revoked_at       TIMESTAMPTZ,
  revoked_by       TEXT,
  CONSTRAINT auto_topup_consents_pkey PRIMARY KEY (id),
  CONSTRAINT auto_topup_consents_account_fkey FOREIGN KEY (account_owner_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT auto_topup_consents_terms_check CHECK (length(terms) > 0),
  CONSTRAINT auto_topup_consents_revoked_check
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL) AND
           (revoked_at IS NULL OR revoked_at >= given_at))
);
CREATE INDEX auto_topup_consents_account_idx
  ON hopsplane.auto_topup_consents (account_owner_id, given_at);

CREATE TABLE hopsplane.auto_topup (
  account_owner_id     TEXT NOT NULL,
  status               TEXT NOT NULL DEFAULT 'off',
  paused_reason        TEXT,
  threshold            NUMERIC(12, 2) NOT NULL,
  amount               NUMERIC(12, 2) NOT NULL,
  currency             TEXT NOT NULL,
  payment_method_id    TEXT,
  card_label           TEXT,
  consent_id           UUID,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  day                  DATE NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
  day_count            INTEGER NOT NULL DEFAULT 0,
  day_amount           NUMERIC(12, 2) NOT NULL DEFAULT 0,
  updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT auto_topup_pkey PRIMARY KEY (account_owner_id),
  CONSTRAINT auto_topup_account_fkey FOREIGN KEY (account_owner_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT auto_topup_consent_fkey FOREIGN KEY (consent_id)
    REFERENCES hopsplane.auto_topup_consents (id),
  CONSTRAINT auto_topup_status_check
    CHECK (status IN ('off', 'awaiting_card', 'on', 'paused')),
  CONSTRAINT auto_topup_paused_reason_check
    CHECK ((status = 'paused') = (paused_reason IS NOT NULL)),
  CONSTRAINT auto_topup_on_needs_card_and_consent_check
    CHECK (status NOT IN ('on', 'paused') OR
           (payment_method_id IS NOT NULL AND consent_id IS NOT NULL)),
  CONSTRAINT auto_topup_amounts_check
    CHECK (threshold >= 0 AND amount > 0 AND day_amount >= 0 AND day_count >= 0 AND
           consecutive_failures >= 0)
);

CREATE TABLE hopsplane.auto_topup_attempts (
  id                  UUID NOT NULL DEFAULT gen_random_uuid(),
  account_owner_id    TEXT NOT NULL,
  crossing_key        TEXT NOT NULL,
  threshold           NUMERIC(12, 2) NOT NULL,
  amount              NUMERIC(12, 2) NOT NULL,
  balance_at_crossing NUMERIC(12, 2) NOT NULL,
  status              TEXT NOT NULL DEFAULT 'scheduled',
  tries               INTEGER NOT NULL DEFAULT 0,
  next_try_at         TIMESTAMPTZ,
  payment_intent_id   TEXT,
  outcome             TEXT,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT auto_topup_attempts_pkey PRIMARY KEY (id),
  CONSTRAINT auto_topup_attempts_account_fkey FOREIGN KEY (account_owner_id)
    REFERENCES hopsplane.auto_topup (account_owner_id) ON DELETE CASCADE,
  CONSTRAINT auto_topup_attempts_crossing_key UNIQUE (account_owner_id, crossing_key),
  CONSTRAINT auto_topup_attempts_status_check
    CHECK (status IN ('scheduled', 'charging', 'processing', 'requires_action',
                      'succeeded', 'failed', 'canceled')),
  CONSTRAINT auto_topup_attempts_amount_check CHECK (amount > 0 AND tries >= 0),
  CONSTRAINT auto_topup_attempts_scheduled_check
    CHECK (status <> 'scheduled' OR next_try_at IS NOT NULL)
);
CREATE UNIQUE INDEX auto_topup_attempts_one_active
  ON hopsplane.auto_topup_attempts (account_owner_id)
  WHERE status IN ('scheduled', 'charging', 'processing', 'requires_action');
CREATE INDEX auto_topup_attempts_account_idx
  ON hopsplane.auto_topup_attempts (account_owner_id, created_at DESC);
CREATE INDEX auto_topup_attempts_payment_intent_idx
  ON hopsplane.auto_topup_attempts (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
"""

DOWNGRADE = """
DROP TABLE hopsplane.auto_topup_attempts;
DROP TABLE hopsplane.auto_topup;
DROP TABLE hopsplane.auto_topup_consents;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
