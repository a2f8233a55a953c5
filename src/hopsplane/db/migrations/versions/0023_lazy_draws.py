"""Draws burned down lazily per account, behind a checkpoint (issue 25).

Revision 0017 drew every entry in its posting's statement (an ``AFTER INSERT`` trigger on
the ledger): each usage debit inserted a lot of its own, scanned the open credits, inserted
its draws and updated two lots per draw. That made a debit cost several times a bare
INSERT, made the set-based batch (billing, purchases, the legacy load) draw row by row,
and gave the lots table a row per entry (larger than the ledger it describes).

From this revision the draws are derived from the ledger by ONE function,
``hopsplane.burn_down(account)``, which replays the account's entries after its checkpoint
(``hopsplane.credit_checkpoints.seq``) through ``hopsplane.draw_entry`` (the burn order,
unchanged) under the account's lock, and moves the checkpoint to the head. Every entry up
to the checkpoint has its draws; entries after it have none yet. The result is the same as
drawing each entry when posted: the order depends only on the entries before it (their
amounts, types, times and references), never on when the replay runs.

It runs when something needs the draws: in ``post_next_entry`` for an expiry, a refund, a
dispute or a dispute reversal (so their constraints are enforced in the posting's own
statement, as before), and at every 256th entry of an account (so the backlog of any
account stays under 256 entries); before reading what is left of a grant (expiry, notice,
the promotional part of a balance); before ``credits verify``. A usage debit, a purchase
and a grant are one chained INSERT again.

Leaner lots: a debit gets a lot only for a part no credit covered (an overdraft), so the
lots are the open credits and the open debts. ``apply_draw`` accepts a draw of a debit
without a lot (it reads the debit's account, type and time from the ledger and refuses a
draw beyond what the debit still owes, ``credit_draws_within_debit``). The lots of covered
debits written by 0017 to 0020 carry nothing (open = 0) and are removed; every draw
recorded so far stays in ``credit_draws``.

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Any account's entries after its checkpoint stay fewer than this: a posting whose seq is a
# multiple of it catches the account up (amortised: one replay of BACKLOG entries per
# BACKLOG postings, on the server, under the lock the posting holds anyway).
BACKLOG = 256


_APPLY_DRAW = r"""
CREATE OR REPLACE FUNCTION hopsplane.apply_draw() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  c_account text; c_expires timestamptz; c_at timestamptz;
  d_account text; d_type text; d_at timestamptz; d_amount numeric; d_drawn numeric;
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
    -- a debit being drawn for the first time has no lot (it gets one only for what no
    -- credit covers): what it may still draw is its amount minus its draws so far
    SELECT l.account_owner_id, l.type, l.created_at, -l.amount
    INTO d_account, d_type, d_at, d_amount
    FROM public.credits_ledger l WHERE l.id = NEW.debit_entry_id AND l.amount < 0;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'credit_draws_debit_fkey: % is not a debit of the ledger', NEW.debit_entry_id
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'credit_draws_debit_fkey';
    END IF;
    SELECT COALESCE(sum(d.amount), 0) INTO d_drawn
    FROM hopsplane.credit_draws d WHERE d.debit_entry_id = NEW.debit_entry_id;
    IF d_drawn + NEW.amount > d_amount THEN
      RAISE EXCEPTION 'credit_draws_within_debit: debit % of % cannot draw % more after %',
        NEW.debit_entry_id, d_amount, NEW.amount, d_drawn
        USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_draws_within_debit';
    END IF;
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
"""

# THE burn order (the one place it is written; src/hopsplane/credits/README.md states it).
_DRAW_ENTRY = r"""
CREATE OR REPLACE FUNCTION hopsplane.draw_entry(e public.credits_ledger) RETURNS void
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
    -- (4) a new credit covers the open overdrafts first, oldest first
    FOR lot IN SELECT l.entry_id, l.open FROM hopsplane.credit_lots l
               WHERE l.account_owner_id = e.account_owner_id AND NOT l.is_credit
                 AND NOT l.spent
               ORDER BY l.account_owner_id, l.seq LOOP
      take := least(need, lot.open);
      INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
      VALUES (lot.entry_id, e.id, take, e.created_at);
      need := need - take;
      EXIT WHEN need = 0;
    END LOOP;
    RETURN;
  END IF;
  IF e.type = 'expiry' THEN
    -- (3) an expiry draws exactly what is left of its grant, at or after its expiry
    INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
    VALUES (e.id, e.refers_to, need, e.created_at);
    IF (SELECT open FROM hopsplane.credit_lots WHERE entry_id = e.refers_to) <> 0 THEN
      RAISE EXCEPTION 'credits_ledger_expiry_all: an expiry removes all that is left of grant %',
        e.refers_to USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_ledger_expiry_all';
    END IF;
    RETURN;
  ELSIF e.type = 'usage' THEN
    -- (1) usage: unexpired credit, the one that expires first first, then credit that
    -- never expires, oldest first (the order of the partial index credit_lots_open_credits)
    FOR lot IN SELECT l.entry_id, l.open FROM hopsplane.credit_lots l
               WHERE l.account_owner_id = e.account_owner_id AND l.is_credit AND NOT l.spent
                 AND (l.expires_at IS NULL OR l.expires_at > e.created_at)
               ORDER BY l.account_owner_id, (l.expires_at IS NULL), l.expires_at, l.seq LOOP
      take := least(need, lot.open);
      INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
      VALUES (e.id, lot.entry_id, take, e.created_at);
      need := need - take;
      EXIT WHEN need = 0;
    END LOOP;
  ELSE
    -- (2) a refund draws its own purchase first, a dispute its disputed purchase (by
    -- payment intent); then other paid credit, oldest first; then promotional credit,
    -- the one that expires first first
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
  -- (5) what no credit covered is owed: the debit's lot, covered by the next credit
  IF need > 0 THEN
    INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                       expires_at, at, amount, open, spent)
    VALUES (e.id, e.account_owner_id, e.seq, e.type, false, NULL, e.created_at,
            abs(e.amount), need, false);
  END IF;
END
$$;
"""

_BURN_DOWN = r"""
-- Replays the account's entries after its checkpoint through draw_entry, in seq order,
-- under the account's lock (taken here too; it stacks with the caller's), and moves the
-- checkpoint to the head. Returns how many entries it drew.
CREATE FUNCTION hopsplane.burn_down(p_account text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  done bigint;
  e public.credits_ledger;
  n integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('credits_ledger:' || p_account, 0));
  SELECT c.seq INTO done FROM hopsplane.credit_checkpoints c
  WHERE c.account_owner_id = p_account;
  FOR e IN SELECT * FROM public.credits_ledger l
           WHERE l.account_owner_id = p_account AND l.seq > COALESCE(done, 0)
           ORDER BY l.account_owner_id, l.seq LOOP
    PERFORM hopsplane.draw_entry(e);
    n := n + 1;
  END LOOP;
  IF n > 0 THEN
    INSERT INTO hopsplane.credit_checkpoints AS c (account_owner_id, seq)
    VALUES (p_account, e.seq)
    ON CONFLICT (account_owner_id) DO UPDATE SET seq = excluded.seq;
  END IF;
  RETURN n;
END
$$;
"""

_POST_NEXT_ENTRY = r"""
CREATE OR REPLACE FUNCTION hopsplane.post_next_entry(
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
    -- draws now for the entries whose rules the database enforces when they are posted
    -- (an expiry's exact amount, a reference's match), and every BACKLOG-th entry
    IF entry_id IS NOT NULL AND (p_type NOT IN ('usage', 'purchase', 'grant')
                                 OR entry_seq % __BACKLOG__ = 0) THEN
        PERFORM hopsplane.burn_down(p_account);
    END IF;
END
$$;
""".replace("__BACKLOG__", str(BACKLOG))


UPGRADE = (
    r"""
CREATE TABLE hopsplane.credit_checkpoints (
  account_owner_id TEXT NOT NULL,
  seq              BIGINT NOT NULL,
  CONSTRAINT credit_checkpoints_pkey PRIMARY KEY (account_owner_id)
);
-- 0017's trigger drew every entry already: each account is drawn up to its head
INSERT INTO hopsplane.credit_checkpoints (account_owner_id, seq)
SELECT account_owner_id, max(seq) FROM public.credits_ledger GROUP BY account_owner_id;

DROP TRIGGER credits_ledger_draw ON public.credits_ledger;
DROP FUNCTION hopsplane.ledger_draw();

-- the lots of debits that credit covered in full hold nothing (their draws stay)
DELETE FROM hopsplane.credit_lots WHERE NOT is_credit AND spent;

-- "does this account hold credit that expires" without reading its history
CREATE INDEX credits_ledger_expiring_by_account ON public.credits_ledger
  (account_owner_id, expires_at) WHERE expires_at IS NOT NULL;
"""
    + _APPLY_DRAW
    + _DRAW_ENTRY
    + _BURN_DOWN
    + _POST_NEXT_ENTRY
)


DOWNGRADE = r"""
-- draw everything, give every covered debit back its (empty) lot, draw in the trigger again
DO $$
DECLARE a text;
BEGIN
  FOR a IN SELECT DISTINCT account_owner_id FROM public.credits_ledger ORDER BY 1 LOOP
    PERFORM hopsplane.burn_down(a);
  END LOOP;
END
$$;
INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                   expires_at, at, amount, open, spent)
SELECT l.id, l.account_owner_id, l.seq, l.type, false, NULL, l.created_at, -l.amount, 0, true
FROM public.credits_ledger l
WHERE l.amount < 0
  AND NOT EXISTS (SELECT 1 FROM hopsplane.credit_lots o WHERE o.entry_id = l.id);
DROP INDEX public.credits_ledger_expiring_by_account;
DROP FUNCTION hopsplane.burn_down(text);
DROP TABLE hopsplane.credit_checkpoints;
CREATE FUNCTION hopsplane.ledger_draw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM hopsplane.draw_entry(NEW);
  RETURN NULL;
END
$$;
CREATE TRIGGER credits_ledger_draw AFTER INSERT ON public.credits_ledger
  FOR EACH ROW EXECUTE FUNCTION hopsplane.ledger_draw();
"""


def _revision_0017_functions() -> str:
    """The function bodies of revision 0017 (draw_entry, apply_draw, post_next_entry),
    taken from its own module so that the downgrade restores exactly them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0017_expiring_credits.py")
    spec = importlib.util.spec_from_file_location("_revision_0017", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.UPGRADE
    parts = []
    for start, end in (
        ("CREATE FUNCTION hopsplane.apply_draw()", "\n$$;\n"),
        ("CREATE FUNCTION hopsplane.draw_entry(", "\n$$;\n"),
        ("CREATE FUNCTION hopsplane.post_next_entry(", "\n$$;\n"),
    ):
        i = text.index(start)
        j = text.index(end, i) + len(end)
        parts.append(text[i:j].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    return "\n".join(parts)


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_revision_0017_functions())
