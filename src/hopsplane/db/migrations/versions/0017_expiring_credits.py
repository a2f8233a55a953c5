"""Expiring grants, draws and disputes.

The ledger gains three entry types and the bookkeeping of which credit every debit used:

- ``credits_ledger.expires_at``: a grant may expire (only a grant; after it was posted).
  Purchases, non-expiring grants and dispute reversals ("paid" credit) never expire.
- ``expiry`` (negative): removes what is left of one expiring grant, at or after its
  expiry; ``refers_to`` names the grant (one expiry per grant, a unique index).
- ``dispute`` (negative, may overdraw like usage): a Stripe dispute of a purchase;
  ``stripe_dispute_id`` names it (one dispute entry per Stripe dispute).
- ``dispute_reversal`` (positive): a dispute the account won; ``refers_to`` names the
  dispute entry and its amount is exactly the dispute's (one per Stripe dispute).

``hopsplane.credit_lots`` holds one row per ledger entry: for a credit (purchase, grant,
dispute_reversal) ``open`` is what is left to draw; for a debit (usage, refund, expiry,
dispute) ``open`` is what no credit covered yet (an overdraft). ``hopsplane.credit_draws``
records every (debit, credit, amount). Both are written only by the trigger
``credits_ledger_draw`` in the posting's statement, whatever path posted the entry (the
one-round-trip function, the set-based batch, the legacy load), so every debit's draws
exist as soon as the debit does:

- a usage debit draws from the open credits that have not expired at the entry's time,
  the one that expires first first, then the credit that never expires, oldest first;
- a refund draws first from its purchase, a dispute from its disputed purchase, then
  from other paid credit (oldest first), then from promotional credit (expiring first);
- an expiry draws exactly what is left of its grant (and the grant is then empty);
- a new credit first covers the open overdrafts, oldest first.

The database refuses a credit drawn beyond its amount (``credit_lots_open_within_amount``),
a draw at or after the credit's expiry other than the grant's own expiry, an expiry before
its grant expires, and a draw across accounts (the trigger ``credit_draws_apply``, which
also stamps ``drawn_at`` as the later of the two entries' times). Both tables are
append-only for their writers: draws are never updated or deleted, lots change only through
a draw.

``hopsplane.post_next_entry`` gets the new columns and an optional entry time (``p_at``;
the fake clock of the property tests, and the expiry job's "as of"). ``balance_events``
gains the kind ``credits_expiring`` (one per grant: its ``ledger_seq`` is the grant's).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = r"""
ALTER TABLE public.credits_ledger
  ADD COLUMN expires_at        TIMESTAMPTZ,
  ADD COLUMN refers_to         UUID,
  ADD COLUMN stripe_dispute_id TEXT;
ALTER TABLE public.credits_ledger
  DROP CONSTRAINT credits_ledger_type_known,
  DROP CONSTRAINT credits_ledger_sign_matches_type,
  DROP CONSTRAINT credits_ledger_only_usage_overdraws;
ALTER TABLE public.credits_ledger
  ADD CONSTRAINT credits_ledger_type_known CHECK (type IN (
    'purchase', 'usage', 'refund', 'grant', 'expiry', 'dispute', 'dispute_reversal')),
  ADD CONSTRAINT credits_ledger_sign_matches_type CHECK (
    (type IN ('purchase', 'grant', 'dispute_reversal') AND amount > 0)
    OR (type IN ('usage', 'refund', 'expiry', 'dispute') AND amount < 0)),
  ADD CONSTRAINT credits_ledger_only_usage_overdraws
    CHECK (type IN ('usage', 'dispute', 'expiry') OR amount > 0 OR balance >= 0),
  ADD CONSTRAINT credits_ledger_expiry_on_grants
    CHECK (expires_at IS NULL OR (type = 'grant' AND expires_at > created_at)),
  ADD CONSTRAINT credits_ledger_reference
    CHECK ((type IN ('expiry', 'dispute_reversal')) = (refers_to IS NOT NULL)),
  ADD CONSTRAINT credits_ledger_dispute_reference
    CHECK ((type IN ('dispute', 'dispute_reversal')) = (stripe_dispute_id IS NOT NULL)),
  ADD CONSTRAINT credits_ledger_refers_to_fkey FOREIGN KEY (refers_to)
    REFERENCES public.credits_ledger (id);
CREATE UNIQUE INDEX credits_ledger_one_expiry_per_grant ON public.credits_ledger (refers_to)
  WHERE type = 'expiry';
CREATE UNIQUE INDEX credits_ledger_one_entry_per_dispute
  ON public.credits_ledger (stripe_dispute_id, type) WHERE stripe_dispute_id IS NOT NULL;
CREATE INDEX credits_ledger_expiring_grants ON public.credits_ledger (expires_at)
  WHERE expires_at IS NOT NULL;

CREATE TABLE hopsplane.credit_lots (
  entry_id         UUID NOT NULL,
  account_owner_id TEXT NOT NULL,
  seq              BIGINT NOT NULL,
  type             TEXT NOT NULL,
  is_credit        BOOLEAN NOT NULL,
  expires_at       TIMESTAMPTZ,
  at               TIMESTAMPTZ NOT NULL,
  amount           NUMERIC(14,2) NOT NULL,
  open             NUMERIC(14,2) NOT NULL,
  spent            BOOLEAN NOT NULL,
  CONSTRAINT credit_lots_pkey PRIMARY KEY (entry_id),
  CONSTRAINT credit_lots_amount_positive CHECK (amount > 0),
  CONSTRAINT credit_lots_open_within_amount CHECK (open >= 0 AND open <= amount),
  CONSTRAINT credit_lots_spent CHECK (spent = (open = 0))
) WITH (fillfactor = 70);
-- The indexes name `spent`, never `open`: a draw that leaves something open changes no
-- indexed column, so the update is HOT (no new index entries for the hot account's lot).
CREATE INDEX credit_lots_open_credits ON hopsplane.credit_lots
  (account_owner_id, (expires_at IS NULL), expires_at, seq) WHERE is_credit AND NOT spent;
CREATE INDEX credit_lots_open_debits ON hopsplane.credit_lots (account_owner_id, seq)
  WHERE NOT is_credit AND NOT spent;

CREATE TABLE hopsplane.credit_draws (
  debit_entry_id  UUID NOT NULL,
  credit_entry_id UUID NOT NULL,
  amount          NUMERIC(14,2) NOT NULL,
  drawn_at        TIMESTAMPTZ NOT NULL,
  CONSTRAINT credit_draws_pkey PRIMARY KEY (debit_entry_id, credit_entry_id),
  CONSTRAINT credit_draws_amount_positive CHECK (amount > 0)
);
CREATE INDEX credit_draws_credit_idx ON hopsplane.credit_draws (credit_entry_id);

-- Every draw moves both lots: the credit's open part and the debit's uncovered part go
-- down by the amount (the lots' CHECK refuses going below zero: no credit is drawn
-- beyond its amount, no debit covered twice). The ledger is not read here: the legacy
-- load writes its entries with the ledger's keys dropped.
CREATE FUNCTION hopsplane.apply_draw() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  c_account text; c_expires timestamptz; c_at timestamptz;
  d_account text; d_type text; d_at timestamptz;
BEGIN
  UPDATE hopsplane.credit_lots
  SET open = open - NEW.amount, spent = (open - NEW.amount = 0)
  WHERE entry_id = NEW.credit_entry_id AND is_credit
  RETURNING account_owner_id, expires_at, at INTO c_account, c_expires, c_at;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'credit_draws_credit_fkey: % is not a credit of the ledger', NEW.credit_entry_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'credit_draws_credit_fkey';
  END IF;
  UPDATE hopsplane.credit_lots
  SET open = open - NEW.amount, spent = (open - NEW.amount = 0)
  WHERE entry_id = NEW.debit_entry_id AND NOT is_credit
  RETURNING account_owner_id, type, at INTO d_account, d_type, d_at;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'credit_draws_debit_fkey: % is not a debit of the ledger', NEW.debit_entry_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'credit_draws_debit_fkey';
  END IF;
  IF c_account <> d_account THEN
    RAISE EXCEPTION 'credit_draws_same_account: a debit of % cannot draw credit of %',
      d_account, c_account
      USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_draws_same_account';
  END IF;
  NEW.drawn_at := greatest(c_at, d_at);
  IF c_expires IS NOT NULL THEN
    IF d_type = 'expiry' AND NEW.drawn_at < c_expires THEN
      RAISE EXCEPTION 'credit_draws_not_expired: credit % expires at %, not before',
        NEW.credit_entry_id, c_expires
        USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_draws_not_expired';
    ELSIF d_type <> 'expiry' AND NEW.drawn_at >= c_expires THEN
      RAISE EXCEPTION 'credit_draws_not_expired: credit % expired at %, it cannot be drawn at %',
        NEW.credit_entry_id, c_expires, NEW.drawn_at
        USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_draws_not_expired';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER credit_draws_apply BEFORE INSERT ON hopsplane.credit_draws
  FOR EACH ROW EXECUTE FUNCTION hopsplane.apply_draw();
CREATE TRIGGER credit_draws_append_only BEFORE UPDATE OR DELETE ON hopsplane.credit_draws
  FOR EACH ROW EXECUTE FUNCTION hopsplane.refuse_ledger_change();
CREATE TRIGGER credit_draws_no_truncate BEFORE TRUNCATE ON hopsplane.credit_draws
  FOR EACH STATEMENT EXECUTE FUNCTION hopsplane.refuse_ledger_change();

-- The lot of a new entry and its draws (see the module docstring for the order).
CREATE FUNCTION hopsplane.draw_entry(e public.credits_ledger) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  need numeric(14,2) := abs(e.amount);
  take numeric(14,2);
  lot record;
  ref public.credits_ledger;
  preferred uuid;
BEGIN
  IF e.refers_to IS NOT NULL THEN
    SELECT * INTO ref FROM public.credits_ledger WHERE id = e.refers_to;
    IF ref.account_owner_id <> e.account_owner_id
       OR (e.type = 'expiry' AND (ref.type <> 'grant' OR ref.expires_at IS NULL))
       OR (e.type = 'dispute_reversal' AND (ref.type <> 'dispute'
           OR ref.stripe_dispute_id <> e.stripe_dispute_id OR ref.amount <> -e.amount)) THEN
      RAISE EXCEPTION 'credits_ledger_reference_matches: a % cannot refer to the % %',
        e.type, ref.type, ref.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_ledger_reference_matches';
    END IF;
  END IF;
  IF e.amount > 0 THEN
    INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                       expires_at, at, amount, open, spent)
    VALUES (e.id, e.account_owner_id, e.seq, e.type, true, e.expires_at, e.created_at,
            need, need, false);
    -- a new credit covers the open overdrafts first, oldest first
    FOR lot IN SELECT l.entry_id, l.open FROM hopsplane.credit_lots l
               WHERE l.account_owner_id = e.account_owner_id AND NOT l.is_credit
                 AND NOT l.spent
               ORDER BY l.seq LOOP
      take := least(need, lot.open);
      INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
      VALUES (lot.entry_id, e.id, take, e.created_at);
      need := need - take;
      EXIT WHEN need = 0;
    END LOOP;
    RETURN;
  END IF;
  INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                     expires_at, at, amount, open, spent)
  VALUES (e.id, e.account_owner_id, e.seq, e.type, false, NULL, e.created_at,
          need, need, false);
  IF e.type = 'expiry' THEN
    INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
    VALUES (e.id, e.refers_to, need, e.created_at);
    IF (SELECT open FROM hopsplane.credit_lots WHERE entry_id = e.refers_to) <> 0 THEN
      RAISE EXCEPTION 'credits_ledger_expiry_all: an expiry removes all that is left of grant %',
        e.refers_to USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_ledger_expiry_all';
    END IF;
  ELSIF e.type = 'usage' THEN
    FOR lot IN SELECT l.entry_id, l.open FROM hopsplane.credit_lots l
               WHERE l.account_owner_id = e.account_owner_id AND l.is_credit AND NOT l.spent
                 AND (l.expires_at IS NULL OR l.expires_at > e.created_at)
               ORDER BY (l.expires_at IS NULL), l.expires_at, l.seq LOOP
      take := least(need, lot.open);
      INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
      VALUES (e.id, lot.entry_id, take, e.created_at);
      need := need - take;
      EXIT WHEN need = 0;
    END LOOP;
  ELSE
    -- a refund or a dispute: its purchase, other paid credit, then promotional credit
    IF e.type = 'refund' THEN
      preferred := e.refund_of;
    ELSIF e.stripe_payment_intent_id IS NOT NULL THEN
      SELECT id INTO preferred FROM public.credits_ledger
      WHERE type = 'purchase' AND stripe_payment_intent_id = e.stripe_payment_intent_id;
    END IF;
    FOR lot IN SELECT l.entry_id, l.open FROM hopsplane.credit_lots l
               WHERE l.account_owner_id = e.account_owner_id AND l.is_credit AND NOT l.spent
                 AND (l.expires_at IS NULL OR l.expires_at > e.created_at)
               ORDER BY l.entry_id IS DISTINCT FROM preferred, l.type = 'grant',
                        (l.expires_at IS NULL), l.expires_at, l.seq LOOP
      take := least(need, lot.open);
      INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
      VALUES (e.id, lot.entry_id, take, e.created_at);
      need := need - take;
      EXIT WHEN need = 0;
    END LOOP;
  END IF;
END
$$;

-- the entries already posted, in each account's order
DO $$
DECLARE e public.credits_ledger;
BEGIN
  FOR e IN SELECT * FROM public.credits_ledger ORDER BY account_owner_id, seq LOOP
    PERFORM hopsplane.draw_entry(e);
  END LOOP;
END
$$;

CREATE FUNCTION hopsplane.ledger_draw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM hopsplane.draw_entry(NEW);
  RETURN NULL;
END
$$;
CREATE TRIGGER credits_ledger_draw AFTER INSERT ON public.credits_ledger
  FOR EACH ROW EXECUTE FUNCTION hopsplane.ledger_draw();

DROP FUNCTION hopsplane.post_next_entry(text, numeric, text, text, text, text, uuid);
CREATE FUNCTION hopsplane.post_next_entry(
    p_account text, p_amount numeric, p_type text, p_description text,
    p_payment_intent text, p_key text, p_refund_of uuid,
    p_expires_at timestamptz DEFAULT NULL, p_refers_to uuid DEFAULT NULL,
    p_dispute text DEFAULT NULL, p_at timestamptz DEFAULT NULL,
    OUT account_found boolean, OUT member_of text,
    OUT entry_id uuid, OUT entry_seq bigint, OUT entry_amount numeric, OUT entry_balance numeric,
    OUT entry_created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT true, u.account_owner_id INTO account_found, member_of
    FROM public.users AS u WHERE u.id = p_account;
    IF account_found IS NULL THEN
        account_found := false;
        RETURN;
    END IF;
    IF member_of IS NOT NULL THEN
        RETURN;  -- a team member: entries belong to the owner
    END IF;
    -- the same lock as the client-side path and the set-based one (credits.repository)
    PERFORM pg_advisory_xact_lock(hashtextextended('credits_ledger:' || p_account, 0));
    INSERT INTO public.credits_ledger AS l (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type,
        description, stripe_payment_intent_id, idempotency_key, refund_of,
        expires_at, refers_to, stripe_dispute_id, created_at)
    SELECT p_account, COALESCE(h.seq, 0) + 1, h.seq, h.balance, p_amount,
           COALESCE(h.balance, 0) + p_amount, p_type, p_description,
           p_payment_intent, p_key, p_refund_of, p_expires_at, p_refers_to, p_dispute,
           COALESCE(p_at, now())
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.seq, c.balance FROM public.credits_ledger AS c
        WHERE c.account_owner_id = p_account ORDER BY c.seq DESC LIMIT 1
    ) AS h ON true
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.id, l.seq, l.amount, l.balance, l.created_at
    INTO entry_id, entry_seq, entry_amount, entry_balance, entry_created_at;
END
$$;

ALTER TABLE hopsplane.balance_events
  ADD COLUMN amount     NUMERIC(16,2),
  ADD COLUMN expires_at TIMESTAMPTZ,
  DROP CONSTRAINT balance_events_kind_known;
ALTER TABLE hopsplane.balance_events
  ADD CONSTRAINT balance_events_kind_known
    CHECK (kind IN ('low_balance', 'suspended', 'resumed', 'credits_expiring')),
  ADD CONSTRAINT balance_events_expiry_for_expiring
    CHECK ((kind = 'credits_expiring') = (expires_at IS NOT NULL AND amount IS NOT NULL));
"""

DOWNGRADE = r"""
DELETE FROM hopsplane.balance_events WHERE kind = 'credits_expiring';
ALTER TABLE hopsplane.balance_events
  DROP CONSTRAINT balance_events_expiry_for_expiring,
  DROP CONSTRAINT balance_events_kind_known,
  DROP COLUMN amount,
  DROP COLUMN expires_at;
ALTER TABLE hopsplane.balance_events
  ADD CONSTRAINT balance_events_kind_known CHECK (kind IN ('low_balance', 'suspended', 'resumed'));

DROP FUNCTION hopsplane.post_next_entry(
    text, numeric, text, text, text, text, uuid, timestamptz, uuid, text, timestamptz);
CREATE FUNCTION hopsplane.post_next_entry(
    p_account text, p_amount numeric, p_type text, p_description text,
    p_payment_intent text, p_key text, p_refund_of uuid,
    OUT account_found boolean, OUT member_of text,
    OUT entry_id uuid, OUT entry_seq bigint, OUT entry_amount numeric, OUT entry_balance numeric,
    OUT entry_created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT true, u.account_owner_id INTO account_found, member_of
    FROM public.users AS u WHERE u.id = p_account;
    IF account_found IS NULL THEN
        account_found := false;
        RETURN;
    END IF;
    IF member_of IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('credits_ledger:' || p_account, 0));
    INSERT INTO public.credits_ledger AS l (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type,
        description, stripe_payment_intent_id, idempotency_key, refund_of)
    SELECT p_account, COALESCE(h.seq, 0) + 1, h.seq, h.balance, p_amount,
           COALESCE(h.balance, 0) + p_amount, p_type, p_description,
           p_payment_intent, p_key, p_refund_of
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.seq, c.balance FROM public.credits_ledger AS c
        WHERE c.account_owner_id = p_account ORDER BY c.seq DESC LIMIT 1
    ) AS h ON true
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.id, l.seq, l.amount, l.balance, l.created_at
    INTO entry_id, entry_seq, entry_amount, entry_balance, entry_created_at;
END
$$;

DROP TRIGGER credits_ledger_draw ON public.credits_ledger;
DROP FUNCTION hopsplane.ledger_draw();
DROP FUNCTION hopsplane.draw_entry(public.credits_ledger);
DROP TABLE hopsplane.credit_draws;
DROP FUNCTION hopsplane.apply_draw();
DROP TABLE hopsplane.credit_lots;

-- the ledger's new entries cannot be represented before 0017: the downgrade refuses them
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM public.credits_ledger
             WHERE type IN ('expiry', 'dispute', 'dispute_reversal')
                OR expires_at IS NOT NULL) THEN
    RAISE EXCEPTION 'the ledger has expiring grants, expiries or disputes: '
                    'revision 0016 cannot hold them';
  END IF;
END
$$;
DROP INDEX public.credits_ledger_expiring_grants;
DROP INDEX public.credits_ledger_one_entry_per_dispute;
DROP INDEX public.credits_ledger_one_expiry_per_grant;
ALTER TABLE public.credits_ledger
  DROP CONSTRAINT credits_ledger_refers_to_fkey,
  DROP CONSTRAINT credits_ledger_dispute_reference,
  DROP CONSTRAINT credits_ledger_reference,
  DROP CONSTRAINT credits_ledger_expiry_on_grants,
  DROP CONSTRAINT credits_ledger_only_usage_overdraws,
  DROP CONSTRAINT credits_ledger_sign_matches_type,
  DROP CONSTRAINT credits_ledger_type_known;
ALTER TABLE public.credits_ledger
  ADD CONSTRAINT credits_ledger_type_known
    CHECK (type IN ('purchase', 'usage', 'refund', 'grant')),
  ADD CONSTRAINT credits_ledger_sign_matches_type CHECK (
    (type IN ('purchase', 'grant') AND amount > 0) OR (type IN ('usage', 'refund') AND amount < 0)),
  ADD CONSTRAINT credits_ledger_only_usage_overdraws
    CHECK (type = 'usage' OR amount > 0 OR balance >= 0),
  DROP COLUMN stripe_dispute_id,
  DROP COLUMN refers_to,
  DROP COLUMN expires_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
