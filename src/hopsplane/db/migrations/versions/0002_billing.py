"""Billing and balance enforcement.

- usage_tracking.billed_amount: what of a day's total_cost is already charged, updated in
  the same transaction as the usage debit; a CHECK keeps it non-negative and a partial
  index finds the rows with something left to charge.
- hopsplane.price_overrides: a per-account unit price from a date, set by a platform admin.
- hopsplane.account_standing: suspended or not, and the lowest low-balance threshold
  already announced (so a notice is sent once per crossing).
  Neither it nor balance_events has a foreign key to users: their rows are written only
  by the posting step, for accounts that have ledger entries (whose owner foreign key
  already holds), and a key check would lock the users row once more per posting.
- hopsplane.balance_events: low-balance notices, suspensions and resumptions, recorded in
  the posting's transaction (an outbox: hooks and emails are dispatched from it exactly
  once, `dispatched_at`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
ALTER TABLE usage_tracking
  ADD COLUMN billed_amount NUMERIC(16,2) NOT NULL DEFAULT 0,
  ADD CONSTRAINT usage_tracking_billed_nonneg CHECK (billed_amount >= 0);
CREATE INDEX usage_tracking_unbilled_idx ON usage_tracking (account_owner_id, date)
  WHERE total_cost > billed_amount;

CREATE TABLE hopsplane.price_overrides (
  account_owner_id  TEXT NOT NULL,
  effective_from    DATE NOT NULL,
  unit_price        NUMERIC(12,6) NOT NULL,
  reason            TEXT NOT NULL,
  set_by            TEXT,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  account_is_member BOOLEAN NOT NULL GENERATED ALWAYS AS (false) STORED,
  CONSTRAINT price_overrides_pkey PRIMARY KEY (account_owner_id, effective_from),
  CONSTRAINT price_overrides_owner_fkey FOREIGN KEY (account_owner_id, account_is_member)
    REFERENCES public.users (id, is_member) ON DELETE RESTRICT,
  CONSTRAINT price_overrides_price_nonneg CHECK (unit_price >= 0),
  CONSTRAINT price_overrides_reason_not_empty CHECK (reason <> '')
);

-- Usage rows take the account's override price (the newest one in force on the row's
-- date) whenever they are written, so total_cost is right from the start and the billing
-- run never reprices. Setting an override reprices the account's rows from its date on
-- (which the service only allows when none of them is billed yet).
CREATE FUNCTION hopsplane.apply_price_override() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  price numeric;
BEGIN
  SELECT o.unit_price INTO price FROM hopsplane.price_overrides o
   WHERE o.account_owner_id = NEW.account_owner_id AND o.effective_from <= NEW.date
   ORDER BY o.effective_from DESC LIMIT 1;
  IF FOUND THEN
    NEW.unit_price := price;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER usage_tracking_price_override
  BEFORE INSERT OR UPDATE OF compute_units, unit_price, date, account_owner_id
  ON usage_tracking FOR EACH ROW EXECUTE FUNCTION hopsplane.apply_price_override();

CREATE TABLE hopsplane.account_standing (
  account_owner_id  TEXT PRIMARY KEY,
  suspended         BOOLEAN NOT NULL DEFAULT false,
  notice_threshold  NUMERIC(16,2),
  ledger_seq        BIGINT NOT NULL,
  changed_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE hopsplane.balance_events (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_owner_id  TEXT NOT NULL,
  kind              TEXT NOT NULL,
  threshold         NUMERIC(16,2),
  balance           NUMERIC(16,2) NOT NULL,
  ledger_seq        BIGINT NOT NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  dispatched_at     TIMESTAMPTZ,
  CONSTRAINT balance_events_once_per_entry UNIQUE (account_owner_id, ledger_seq, kind),
  CONSTRAINT balance_events_kind_known CHECK (kind IN ('low_balance', 'suspended', 'resumed')),
  CONSTRAINT balance_events_threshold_for_notices
    CHECK ((kind = 'low_balance') = (threshold IS NOT NULL))
);
CREATE INDEX balance_events_pending_idx ON hopsplane.balance_events (id)
  WHERE dispatched_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE hopsplane.balance_events;
DROP TABLE hopsplane.account_standing;
DROP TRIGGER usage_tracking_price_override ON usage_tracking;
DROP FUNCTION hopsplane.apply_price_override();
DROP TABLE hopsplane.price_overrides;
DROP INDEX usage_tracking_unbilled_idx;
ALTER TABLE usage_tracking DROP COLUMN billed_amount;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # Forgetting what was charged would make the next billing run charge it again.
    billed = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM usage_tracking WHERE billed_amount > 0"
    ).scalar()
    if billed:
        raise RuntimeError(
            f"refusing to downgrade below 0002: {billed} usage rows are (partly) billed "
            "and billed_amount would be lost"
        )
    op.execute(DOWNGRADE)
