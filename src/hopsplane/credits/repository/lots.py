"""SQL of the draw-down: lots, draws and checkpoints, expiring grants and their
notices, and the draws' check."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.credits.schemas import ChainBreak

# --- expiring grants and draws (issue 15, revision 0017; lazy since 0023) ---------------
# The draws of an account exist up to its checkpoint; ``hopsplane.burn_down`` (revision
# 0023, the one home of the burn order: see credits/README.md) draws the entries after it
# under the account's lock. Whatever reads lots or draws catches the account up first.


def db_now(session: Session) -> datetime:
    """The transaction's time on the server (what an entry's ``created_at`` defaults to)."""
    value: datetime = session.execute(text("SELECT now()")).scalar_one()
    return value


def catch_up(session: Session, account_ids: list[str]) -> int:
    """Draw every entry of these accounts after their checkpoints (each under its lock,
    taken in sorted order until the transaction ends). Returns how many entries were
    drawn."""
    value = session.execute(
        text(
            "SELECT COALESCE(sum(hopsplane.burn_down(a)), 0) "
            "FROM (SELECT DISTINCT a FROM unnest(CAST(:accounts AS text[])) AS a "
            "ORDER BY a) AS s"
        ),
        {"accounts": account_ids},
    ).scalar_one()
    return int(value)


def accounts_behind(session: Session) -> list[str]:
    """Accounts with entries after their checkpoint (one pass over the heads), sorted."""
    rows = session.execute(
        text(
            """
            SELECT h.account_owner_id
            FROM (SELECT DISTINCT ON (account_owner_id) account_owner_id, seq
                  FROM credits_ledger ORDER BY account_owner_id, seq DESC) AS h
            LEFT JOIN hopsplane.credit_checkpoints c USING (account_owner_id)
            WHERE h.seq > COALESCE(c.seq, 0)
            ORDER BY 1
            """
        )
    )
    return [r[0] for r in rows]


# Accounts behind their head that hold an expiring grant (in the window) without an expiry
# entry whose lot is open or not drawn yet: caught up before the grants are read.
_CATCH_UP_DUE = text(
    """
    SELECT count(hopsplane.burn_down(a)) FROM (
        SELECT DISTINCT l.account_owner_id AS a FROM credits_ledger l
        WHERE l.expires_at IS NOT NULL AND l.expires_at <= :until
          AND (CAST(:since AS timestamptz) IS NULL OR l.expires_at > :since)
          AND NOT EXISTS (SELECT 1 FROM credits_ledger x
                          WHERE x.refers_to = l.id AND x.type = 'expiry')
          AND NOT EXISTS (SELECT 1 FROM hopsplane.credit_lots o
                          WHERE o.entry_id = l.id AND o.spent)
          -- only accounts behind: once caught up they leave the list, so the next call
          -- takes the next ones however many hold such grants
          AND EXISTS (SELECT 1 FROM credits_ledger n
                      WHERE n.account_owner_id = l.account_owner_id
                        AND n.seq > COALESCE((SELECT c.seq FROM hopsplane.credit_checkpoints c
                                              WHERE c.account_owner_id = l.account_owner_id),
                                             0))
        ORDER BY 1
        LIMIT :limit
    ) AS s
    """
)


def catch_up_grants(
    session: Session, until: datetime, limit: int, since: datetime | None = None
) -> None:
    """Catch up (at most ``limit``) accounts holding a grant that expires in (since,
    until] with something possibly left, so that what is left of it can be read."""
    session.execute(_CATCH_UP_DUE, {"until": until, "since": since, "limit": limit})


def grants_due(session: Session, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
    """(grant id, account) of expiring grants past their expiry with something left, as
    of the accounts' checkpoints (:func:`catch_up_grants` first)."""
    rows = session.execute(
        text(
            """
            SELECT l.id, l.account_owner_id FROM credits_ledger l
            JOIN hopsplane.credit_lots o ON o.entry_id = l.id
            WHERE l.expires_at IS NOT NULL AND l.expires_at <= :now AND o.open > 0
            ORDER BY l.expires_at, l.id
            LIMIT :limit
            """
        ),
        {"now": now, "limit": limit},
    )
    return [(r[0], r[1]) for r in rows]


def open_part(session: Session, entry_id: uuid.UUID) -> Decimal:
    """What is left of a credit (or not yet covered of a debit), after catching its
    account up; under the account's lock, it cannot change before the transaction ends."""
    value = session.execute(
        text(
            "SELECT o.open FROM credits_ledger l "
            "CROSS JOIN LATERAL hopsplane.burn_down(l.account_owner_id) AS b "
            "LEFT JOIN hopsplane.credit_lots o ON o.entry_id = l.id WHERE l.id = :id"
        ),
        {"id": entry_id},
    ).scalar_one_or_none()
    return Decimal("0.00") if value is None else Decimal(value)


# Only accounts drawn up to their head: a notice states what is left exactly. Published
# through hopsplane.publish_event (revision 0025), keyed by the grant's entry.
_RECORD_EXPIRING = text(
    """
    SELECT count(hopsplane.publish_event(
        'credits_expiring', l.account_owner_id,
        'credits_expiring:' || l.account_owner_id || ':' || l.seq,
        jsonb_build_object('amount', CAST(o.open AS text), 'expires_at', l.expires_at,
                           'balance', CAST(h.balance AS text), 'ledger_seq', l.seq)))
    FROM credits_ledger l
    JOIN hopsplane.credit_lots o ON o.entry_id = l.id
    JOIN hopsplane.credit_checkpoints c ON c.account_owner_id = l.account_owner_id
    CROSS JOIN LATERAL (SELECT h.seq, h.balance FROM credits_ledger h
                        WHERE h.account_owner_id = l.account_owner_id
                        ORDER BY h.seq DESC LIMIT 1) AS h
    WHERE l.expires_at IS NOT NULL AND l.expires_at > :now AND l.expires_at <= :until
      AND o.open > 0 AND h.seq = c.seq
    """
)


def record_expiring(session: Session, now: datetime, until: datetime) -> int:
    """Publish one ``credits_expiring`` event per grant that expires in (now, until] with
    something left; its key names the grant's entry, so a grant is announced once
    whatever the number of runs (the queue holds one job per key). Returns how many were
    new."""
    return int(session.execute(_RECORD_EXPIRING, {"now": now, "until": until}).scalar_one())


def promotional(session: Session, account_id: str, now: datetime) -> list[tuple[Decimal, datetime]]:
    """(amount left, expires at) of an account's unexpired expiring grants, soonest first.
    Only an account that holds such a grant is caught up (and locked) first."""
    session.execute(
        text(
            "SELECT hopsplane.burn_down(:a) WHERE EXISTS (SELECT 1 FROM credits_ledger "
            "WHERE account_owner_id = :a AND expires_at IS NOT NULL AND expires_at > :now)"
        ),
        {"a": account_id, "now": now},
    )
    rows = session.execute(
        text(
            """
            SELECT o.open, o.expires_at FROM hopsplane.credit_lots o
            WHERE o.account_owner_id = :a AND o.is_credit AND o.open > 0
              AND o.expires_at IS NOT NULL AND o.expires_at > :now
            ORDER BY o.expires_at, o.seq
            """
        ),
        {"a": account_id, "now": now},
    )
    return [(Decimal(r[0]), r[1]) for r in rows]


def draws_of(session: Session, entry_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID, Decimal]]:
    """(debit, credit, amount) of the draws an entry takes part in, either side, after
    catching its account up."""
    session.execute(
        text("SELECT hopsplane.burn_down(account_owner_id) FROM credits_ledger WHERE id = :id"),
        {"id": entry_id},
    )
    rows = session.execute(
        text(
            "SELECT debit_entry_id, credit_entry_id, amount FROM hopsplane.credit_draws "
            "WHERE debit_entry_id = :id OR credit_entry_id = :id "
            "ORDER BY debit_entry_id, credit_entry_id"
        ),
        {"id": entry_id},
    )
    return [(r[0], r[1], Decimal(r[2])) for r in rows]


# The draws are checked up to each account's checkpoint (the caller catches up first).
_DRAW_BREAKS = """
WITH drawn AS (
    SELECT l.id, l.account_owner_id, l.seq, abs(l.amount) AS amount, (l.amount > 0) AS credit,
           l.expires_at, c.seq AS checkpoint
    FROM credits_ledger l
    JOIN hopsplane.credit_checkpoints c ON c.account_owner_id = l.account_owner_id
    WHERE l.seq <= c.seq {ledger_and}
),
lots AS (
    SELECT o.*, l.account_owner_id AS ledger_account, abs(l.amount) AS ledger_amount,
           (l.amount > 0) AS ledger_credit, l.expires_at AS ledger_expires,
           COALESCE((SELECT sum(d.amount) FROM hopsplane.credit_draws d
                     WHERE d.credit_entry_id = o.entry_id OR d.debit_entry_id = o.entry_id),
                    0) AS drawn
    FROM hopsplane.credit_lots o
    LEFT JOIN credits_ledger l ON l.id = o.entry_id
    {lots_where}
),
lot_problems AS (
    SELECT account_owner_id, seq,
           CASE
             WHEN ledger_account IS NULL THEN 'a lot without its ledger entry'
             WHEN ledger_account <> account_owner_id OR ledger_amount <> amount
                  OR ledger_credit <> is_credit
                  OR ledger_expires IS DISTINCT FROM expires_at
               THEN 'the lot does not match its ledger entry'
             ELSE format('open part %s <> amount %s - drawn %s', open, amount, drawn)
           END AS problem
    FROM lots
    WHERE ledger_account IS NULL OR ledger_account <> account_owner_id
       OR ledger_amount <> amount OR ledger_credit <> is_credit
       OR ledger_expires IS DISTINCT FROM expires_at OR open <> amount - drawn
),
missing AS (  -- a credit drawn without its lot
    SELECT e.account_owner_id, e.seq, 'a credit without its lot' AS problem
    FROM drawn e
    WHERE e.credit AND NOT EXISTS (SELECT 1 FROM hopsplane.credit_lots o WHERE o.entry_id = e.id)
),
uncovered AS (  -- a debit without a lot must be covered in full by its draws
    SELECT e.account_owner_id, e.seq,
           format('debit of %s drawn %s and owes nothing', e.amount, COALESCE(d.drawn, 0))
             AS problem
    FROM drawn e
    LEFT JOIN LATERAL (SELECT sum(x.amount) AS drawn FROM hopsplane.credit_draws x
                       WHERE x.debit_entry_id = e.id) AS d ON true
    WHERE NOT e.credit AND COALESCE(d.drawn, 0) <> e.amount
      AND NOT EXISTS (SELECT 1 FROM hopsplane.credit_lots o WHERE o.entry_id = e.id)
),
early AS (  -- a lot or a draw of an entry after the checkpoint
    SELECT o.account_owner_id, o.seq, 'drawn ahead of the checkpoint' AS problem
    FROM hopsplane.credit_lots o
    LEFT JOIN hopsplane.credit_checkpoints c ON c.account_owner_id = o.account_owner_id
    WHERE o.seq > COALESCE(c.seq, 0) {lots_and}
),
bad_draws AS (
    SELECT l.account_owner_id, l.seq,
           format('draw of %s by entry %s after the credit expired at %s',
                  d.amount, b.seq, l.expires_at) AS problem
    FROM hopsplane.credit_draws d
    JOIN credits_ledger l ON l.id = d.credit_entry_id
    JOIN credits_ledger b ON b.id = d.debit_entry_id
    WHERE l.expires_at IS NOT NULL
      AND ((b.type = 'expiry') <> (d.drawn_at >= l.expires_at))
      {draws_and}
),
open_by_account AS (  -- one pass over the lots (a subquery per account would be a scan each)
    SELECT o.account_owner_id,
           sum(CASE WHEN o.is_credit THEN o.open ELSE -o.open END) AS open_total
    FROM hopsplane.credit_lots o {lots_where_o}
    GROUP BY o.account_owner_id
),
totals AS (
    SELECT c.account_owner_id, c.seq AS checkpoint, COALESCE(t.open_total, 0) AS open_total
    FROM hopsplane.credit_checkpoints c
    LEFT JOIN open_by_account t ON t.account_owner_id = c.account_owner_id
    {checkpoints_where}
),
balance_problems AS (
    SELECT t.account_owner_id, h.seq,
           format('open credit minus open debt %s <> balance %s', t.open_total, h.balance)
             AS problem
    FROM totals t
    JOIN credits_ledger h ON h.account_owner_id = t.account_owner_id AND h.seq = t.checkpoint
    WHERE t.open_total <> h.balance
)
SELECT * FROM lot_problems UNION ALL SELECT * FROM missing UNION ALL SELECT * FROM uncovered
UNION ALL SELECT * FROM early UNION ALL SELECT * FROM bad_draws
UNION ALL SELECT * FROM balance_problems
ORDER BY 1, 2
LIMIT :max_breaks
"""


def draw_breaks(
    session: Session, account_id: str | None = None, *, max_breaks: int = 1000
) -> list[ChainBreak]:
    """What is wrong with the draws up to each account's checkpoint: every credit has its
    lot, each lot matches its entry and its open part is its amount minus its draws, a
    debit without a lot drew exactly its amount, nothing is drawn ahead of the checkpoint,
    no draw of a credit at or after its expiry but by its own expiry, and open credit minus
    open debt is the balance at the checkpoint."""
    one = account_id is not None
    sql = _DRAW_BREAKS.format(
        lots_where="WHERE o.account_owner_id = :account" if one else "",
        lots_and="AND o.account_owner_id = :account" if one else "",
        ledger_and="AND l.account_owner_id = :account" if one else "",
        draws_and="AND l.account_owner_id = :account" if one else "",
        checkpoints_where="WHERE c.account_owner_id = :account" if one else "",
        lots_where_o="WHERE o.account_owner_id = :account" if one else "",
    )
    rows = session.execute(text(sql), {"account": account_id, "max_breaks": max_breaks})
    return [ChainBreak(r.account_owner_id, r.seq, r.problem) for r in rows]
