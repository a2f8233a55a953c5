"""Draws burned down lazily per account, behind a checkpoint.

Revision 0017 drew every entry in its posting's statement (an ``AFTER INSERT`` trigger on
the ledger): each usage debit inserted a lot of its own, scanned the open credits, inserted
its draws and updated two lots per draw. That made a debit cost several times a bare
INSERT, made the set-based batch (billing, purchases, the legacy load) draw row by row,
and gave the lots table a row per entry (larger than the ledger it describes).

From this revision the draws are derived from the ledger by ONE function,
``hopsplane.burn_down(account)``: under the account's lock it reads the account's open lots
once, draws the entries after its checkpoint (``hopsplane.credit_checkpoints.seq``) in
memory in seq order (the burn order of 0017, unchanged, now written only there), and writes
the result set-based: the draws in one INSERT, each lot that changed once, the checkpoint.
Every entry up to the checkpoint has its draws; entries after it have none yet. The result
is the same as drawing each entry when posted: the order depends only on the entries before
it (their amounts, types, times and references), never on when the replay runs.

It runs when something needs the draws: in ``post_next_entry`` for an expiry, a refund, a
dispute or a dispute reversal (so their constraints are enforced in the posting's own
statement, as before), and at every 256th entry of an account (so the backlog of any
account stays under 256 entries); before reading what is left of a grant (expiry, notice,
the promotional part of a balance); before ``credits verify``. A usage debit, a purchase
and a grant are one chained INSERT again.

Leaner lots: a debit gets a lot only for a part no credit covered (an overdraft), so the
lots are the open credits and the open debts. ``apply_draw`` accepts a draw of a debit
without a lot (it reads the debit's account, type and time from the ledger and refuses a
draw beyond what the debit still owes, ``credit_draws_within_debit``); the draws that
burn_down writes skip it (the transaction-local setting ``hopsplane.burning``), since
burn_down sets the lots itself, and ``credits verify`` checks both against each other.
The lots of covered debits written by 0017 to 0020 carry nothing (open = 0) and are
removed; every draw recorded so far stays in ``credit_draws``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
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
  IF current_setting('hopsplane.burning', true) = 'on' THEN
    -- written by burn_down, which sets the lots itself (once, after all its draws)
    RETURN NEW;
  END IF;
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
# The account's open lots are read once into arrays, the entries after the checkpoint are
# drawn in memory in seq order, and the result is written set-based at the end: each lot
# once, the draws in one INSERT. (Drawing entry by entry into the tables updated the same
# lot row once per entry inside one transaction, where no version can be pruned: a replay
# of 256 entries bloated the lots' pages and their index.)
_BURN_DOWN = r"""
CREATE FUNCTION hopsplane.burn_down(p_account text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  done bigint;
  e public.credits_ledger;
  ref public.credits_ledger;
  n integer := 0;
  -- open credit lots (c_*) and open debts (d_*), in seq order; *_was: open when read
  c_id uuid[]; c_seq bigint[]; c_type text[]; c_exp timestamptz[]; c_at timestamptz[];
  c_open numeric[]; c_was numeric[];
  d_id uuid[]; d_seq bigint[]; d_type text[]; d_at timestamptz[]; d_amount numeric[];
  d_open numeric[]; d_was numeric[];
  -- the draws made here
  w_debit uuid[] := '{}'; w_credit uuid[] := '{}'; w_amount numeric[] := '{}';
  w_at timestamptz[] := '{}';
  need numeric(14,2); take numeric(14,2);
  best integer; rank_i integer; rank_b integer; i integer;
  preferred uuid;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('credits_ledger:' || p_account, 0));
  SELECT c.seq INTO done FROM hopsplane.credit_checkpoints c
  WHERE c.account_owner_id = p_account;
  SELECT COALESCE(array_agg(o.entry_id ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.seq ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.type ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.expires_at ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.at ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.open ORDER BY o.seq), '{}')
  INTO c_id, c_seq, c_type, c_exp, c_at, c_open
  FROM hopsplane.credit_lots o
  WHERE o.account_owner_id = p_account AND o.is_credit AND NOT o.spent;
  c_was := c_open;
  SELECT COALESCE(array_agg(o.entry_id ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.seq ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.type ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.at ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.amount ORDER BY o.seq), '{}'),
         COALESCE(array_agg(o.open ORDER BY o.seq), '{}')
  INTO d_id, d_seq, d_type, d_at, d_amount, d_open
  FROM hopsplane.credit_lots o
  WHERE o.account_owner_id = p_account AND NOT o.is_credit AND NOT o.spent;
  d_was := d_open;

  FOR e IN SELECT * FROM public.credits_ledger l
           WHERE l.account_owner_id = p_account AND l.seq > COALESCE(done, 0)
           ORDER BY l.account_owner_id, l.seq LOOP
    n := n + 1;
    need := abs(e.amount);
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
      -- (4) a new credit covers the open debts first, oldest first
      c_id := c_id || e.id; c_seq := c_seq || e.seq; c_type := c_type || e.type;
      c_exp := c_exp || e.expires_at; c_at := c_at || e.created_at;
      c_was := c_was || NULL::numeric;  -- new: inserted at the end
      FOR i IN 1 .. cardinality(d_id) LOOP
        EXIT WHEN need = 0;
        CONTINUE WHEN d_open[i] = 0;
        take := least(need, d_open[i]);
        d_open[i] := d_open[i] - take;
        need := need - take;
        w_debit := w_debit || d_id[i]; w_credit := w_credit || e.id;
        w_amount := w_amount || take; w_at := w_at || greatest(d_at[i], e.created_at);
      END LOOP;
      c_open := c_open || need;
      CONTINUE;
    END IF;

    IF e.type = 'expiry' THEN
      -- (3) an expiry draws exactly what is left of its grant, at or after its expiry
      best := array_position(c_id, e.refers_to);
      IF best IS NULL OR c_open[best] < need THEN
        RAISE EXCEPTION 'credit_lots_open_within_amount: the expiry of % takes more than is left',
          e.refers_to
          USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_lots_open_within_amount';
      END IF;
      IF e.created_at < c_exp[best] THEN
        RAISE EXCEPTION 'credit_draws_not_expired: credit % expires at %, not before',
          e.refers_to, c_exp[best]
          USING ERRCODE = 'check_violation', CONSTRAINT = 'credit_draws_not_expired';
      END IF;
      IF c_open[best] <> need THEN
        RAISE EXCEPTION 'credits_ledger_expiry_all: an expiry removes all that is left of grant %',
          e.refers_to USING ERRCODE = 'check_violation', CONSTRAINT = 'credits_ledger_expiry_all';
      END IF;
      c_open[best] := 0;
      w_debit := w_debit || e.id; w_credit := w_credit || e.refers_to;
      w_amount := w_amount || need; w_at := w_at || greatest(c_at[best], e.created_at);
      CONTINUE;
    END IF;

    -- (1) usage: unexpired credit, the one that expires first first, then credit that
    -- never expires, oldest first. (2) a refund: its own purchase first, a dispute: its
    -- disputed purchase first; then paid credit before grants; then the same order as (1)
    preferred := NULL;
    IF e.type = 'refund' THEN
      preferred := e.refund_of;
    ELSIF e.type <> 'usage' AND e.stripe_payment_intent_id IS NOT NULL THEN
      SELECT id INTO preferred FROM public.credits_ledger
      WHERE type = 'purchase' AND stripe_payment_intent_id = e.stripe_payment_intent_id;
    END IF;
    LOOP
      EXIT WHEN need = 0;
      best := NULL;
      FOR i IN 1 .. cardinality(c_id) LOOP
        CONTINUE WHEN c_open[i] = 0 OR (c_exp[i] IS NOT NULL AND c_exp[i] <= e.created_at);
        IF e.type = 'usage' THEN
          rank_i := 0;
        ELSE
          rank_i := CASE WHEN c_id[i] = preferred THEN 0 ELSE 2 END
                    + CASE WHEN c_type[i] = 'grant' THEN 1 ELSE 0 END;
        END IF;
        IF best IS NULL OR rank_i < rank_b
           OR (rank_i = rank_b AND (
                 (c_exp[i] IS NOT NULL AND c_exp[best] IS NULL)
                 OR (c_exp[i] IS NOT NULL AND c_exp[best] IS NOT NULL
                     AND (c_exp[i] < c_exp[best]
                          OR (c_exp[i] = c_exp[best] AND c_seq[i] < c_seq[best])))
                 OR (c_exp[i] IS NULL AND c_exp[best] IS NULL AND c_seq[i] < c_seq[best])))
        THEN
          best := i;
          rank_b := rank_i;
        END IF;
      END LOOP;
      EXIT WHEN best IS NULL;
      take := least(need, c_open[best]);
      c_open[best] := c_open[best] - take;
      need := need - take;
      w_debit := w_debit || e.id; w_credit := w_credit || c_id[best];
      w_amount := w_amount || take; w_at := w_at || greatest(c_at[best], e.created_at);
    END LOOP;
    -- (5) what no credit covered is owed, and covered by the next credit (4)
    IF need > 0 THEN
      d_id := d_id || e.id; d_seq := d_seq || e.seq; d_type := d_type || e.type;
      d_at := d_at || e.created_at; d_amount := d_amount || abs(e.amount);
      d_open := d_open || need; d_was := d_was || NULL::numeric;
    END IF;
  END LOOP;
  IF n = 0 THEN
    RETURN 0;
  END IF;

  -- written once: the draws (their trigger only checks them: the lots are set below),
  -- each lot that changed, each new lot, the checkpoint
  PERFORM set_config('hopsplane.burning', 'on', true);
  INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, drawn_at)
  SELECT * FROM unnest(w_debit, w_credit, w_amount, w_at);
  PERFORM set_config('hopsplane.burning', 'off', true);
  UPDATE hopsplane.credit_lots o SET open = x.open, spent = (x.open = 0)
  FROM unnest(c_id || d_id, c_open || d_open, c_was || d_was) AS x(id, open, was)
  WHERE x.was IS NOT NULL AND x.open <> x.was AND o.entry_id = x.id;
  INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                     expires_at, at, amount, open, spent)
  SELECT x.id, p_account, x.seq, x.type, true, x.exp, x.at, abs(l.amount), x.open, x.open = 0
  FROM unnest(c_id, c_seq, c_type, c_exp, c_at, c_open, c_was)
       AS x(id, seq, type, exp, at, open, was)
  JOIN public.credits_ledger l ON l.id = x.id
  WHERE x.was IS NULL;
  INSERT INTO hopsplane.credit_lots (entry_id, account_owner_id, seq, type, is_credit,
                                     expires_at, at, amount, open, spent)
  SELECT x.id, p_account, x.seq, x.type, false, NULL, x.at, x.amount, x.open, false
  FROM unnest(d_id, d_seq, d_type, d_at, d_amount, d_open, d_was)
       AS x(id, seq, type, at, amount, open, was)
  WHERE x.was IS NULL AND x.open > 0;
  INSERT INTO hopsplane.credit_checkpoints AS c (account_owner_id, seq)
  VALUES (p_account, e.seq)
  ON CONFLICT (account_owner_id) DO UPDATE SET seq = excluded.seq;
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
    + "DROP FUNCTION hopsplane.draw_entry(public.credits_ledger);\n"
    + _APPLY_DRAW
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
