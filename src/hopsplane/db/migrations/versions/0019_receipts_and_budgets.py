"""Receipts of top-ups, "back above the threshold" notices and member budgets.

- hopsplane.purchase_receipts (payments): the Stripe receipt of a purchase, one row per
  payment intent. Top-ups are Checkout Sessions with invoice creation on, so Stripe makes
  a paid invoice whose ``hosted_invoice_url`` is the receipt; purchases made before that
  (no invoice) get their charge's ``receipt_url`` from the backfill of
  ``hopsplane stripe reconcile``. A row may hold only the invoice id while the link is
  not known yet (Stripe was unreachable when the payment was credited): the backfill
  fetches it. No column is added to credits_ledger, which stays append-only and
  payment-agnostic; the receipt joins the ledger's purchase on the payment intent.
- hopsplane.balance_events gains the kind ``recovered``: the balance rose back above
  every threshold after a low-balance notice (written by the same statement that writes
  low-balance notices, once per crossing: the (account, ledger entry, kind) key).
- hopsplane.member_budgets (billing): an owner's monthly budget for one member of their
  team, in money, with enforcement on or off. ``stopped_month`` is the first day of the
  month in which the member was stopped for being over budget (NULL: not stopped).
- hopsplane.budget_notices (billing): the outbox of 80 % / 100 % notices, one row per
  recipient (owner, member), unique per member, month, threshold and budget amount, so a
  notice is recorded once per crossing and a retry of the dispatch never sends it twice;
  a new budget amount re-arms the thresholds.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE hopsplane.purchase_receipts (
  payment_intent_id TEXT NOT NULL,
  account_owner_id  TEXT NOT NULL,
  invoice_id        TEXT,
  receipt_url       TEXT,
  pdf_url           TEXT,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT purchase_receipts_pkey PRIMARY KEY (payment_intent_id),
  CONSTRAINT purchase_receipts_something_known
    CHECK (invoice_id IS NOT NULL OR receipt_url IS NOT NULL),
  CONSTRAINT purchase_receipts_https
    CHECK ((receipt_url IS NULL OR receipt_url LIKE 'https://%')
           AND (pdf_url IS NULL OR pdf_url LIKE 'https://%'))
);
CREATE INDEX purchase_receipts_account_idx ON hopsplane.purchase_receipts (account_owner_id);
CREATE INDEX purchase_receipts_missing_idx ON hopsplane.purchase_receipts (payment_intent_id)
  WHERE receipt_url IS NULL;

ALTER TABLE hopsplane.balance_events
  DROP CONSTRAINT balance_events_kind_known,
  DROP CONSTRAINT balance_events_threshold_for_notices,
  ADD CONSTRAINT balance_events_kind_known
    CHECK (kind IN ('low_balance', 'suspended', 'resumed', 'credits_expiring', 'recovered')),
  ADD CONSTRAINT balance_events_threshold_for_notices
    CHECK ((kind IN ('low_balance', 'recovered')) = (threshold IS NOT NULL));

CREATE TABLE hopsplane.member_budgets (
  member_id        TEXT NOT NULL,
  account_owner_id TEXT NOT NULL,
  monthly_budget   NUMERIC(14,2) NOT NULL,
  enforce          BOOLEAN NOT NULL DEFAULT false,
  stopped_month    DATE,
  set_by           TEXT,
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT member_budgets_pkey PRIMARY KEY (member_id),
  CONSTRAINT member_budgets_member_id_fkey FOREIGN KEY (member_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT member_budgets_account_owner_id_fkey FOREIGN KEY (account_owner_id)
    REFERENCES public.users (id) ON DELETE CASCADE,
  CONSTRAINT member_budgets_positive CHECK (monthly_budget > 0),
  CONSTRAINT member_budgets_not_the_owner CHECK (member_id <> account_owner_id),
  CONSTRAINT member_budgets_month_start
    CHECK (stopped_month IS NULL OR extract(day FROM stopped_month) = 1)
);
CREATE INDEX member_budgets_account_idx ON hopsplane.member_budgets (account_owner_id);

CREATE TABLE hopsplane.budget_notices (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  member_id        TEXT NOT NULL,
  account_owner_id TEXT NOT NULL,
  month            DATE NOT NULL,
  percent          SMALLINT NOT NULL,
  budget           NUMERIC(14,2) NOT NULL,
  spend            NUMERIC(16,2) NOT NULL,
  recipient        TEXT NOT NULL,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  dispatched_at    TIMESTAMPTZ,
  CONSTRAINT budget_notices_once UNIQUE (member_id, month, percent, budget, recipient),
  CONSTRAINT budget_notices_percent_known CHECK (percent IN (80, 100)),
  CONSTRAINT budget_notices_recipient_known CHECK (recipient IN ('owner', 'member'))
);
CREATE INDEX budget_notices_pending_idx ON hopsplane.budget_notices (id)
  WHERE dispatched_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE hopsplane.budget_notices;
DROP TABLE hopsplane.member_budgets;
DELETE FROM hopsplane.balance_events WHERE kind = 'recovered';
ALTER TABLE hopsplane.balance_events
  DROP CONSTRAINT balance_events_kind_known,
  DROP CONSTRAINT balance_events_threshold_for_notices,
  ADD CONSTRAINT balance_events_kind_known
    CHECK (kind IN ('low_balance', 'suspended', 'resumed', 'credits_expiring')),
  ADD CONSTRAINT balance_events_threshold_for_notices
    CHECK ((kind = 'low_balance') = (threshold IS NOT NULL));
DROP TABLE hopsplane.purchase_receipts;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
