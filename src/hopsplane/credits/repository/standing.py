"""SQL of an account's standing: suspended or not, and the low-balance level already
announced, brought up to date after postings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.credits.repository.connection import _psycopg_style
from hopsplane.credits.schemas import BalanceEvent

# After postings: bring each account's standing up to date with its head balance, and
# publish what changed (in the same statement, from the standing read before the update).
# Level = the lowest threshold the balance is at or under; a notice is due when the level
# drops below the announced one, and a "recovered" notice when an announced level clears
# (the balance is back above every threshold; the announced level is set only by a
# low-balance notice, so a recovery always follows one). Every change is published
# through hopsplane.publish_event (revision 0025: the notice job, keyed by kind, account
# and entry, so it is queued once). A suspension or resumption the caller does not
# announce through the hooks in this transaction (:announced false) gets a
# credits.announce_standing job that announces it.
# The caller holds the accounts' advisory locks.
_APPLY_STANDING = text(
    """
    WITH heads AS (
        SELECT a.account, h.seq, h.balance
        FROM unnest(CAST(:accounts AS text[])) AS a(account)
        CROSS JOIN LATERAL (
            SELECT seq, balance FROM credits_ledger
            WHERE account_owner_id = a.account ORDER BY seq DESC LIMIT 1
        ) AS h
    ),
    computed AS (
        SELECT h.account, h.seq, h.balance,
               COALESCE(s.suspended, false) AS was_suspended,
               s.notice_threshold AS old_level,
               s.account_owner_id IS NOT NULL AS known,
               h.balance <= 0 AS now_suspended,
               (SELECT min(t) FROM unnest(CAST(:thresholds AS numeric[])) AS t
                WHERE h.balance <= t) AS new_level
        FROM heads h
        LEFT JOIN hopsplane.account_standing s ON s.account_owner_id = h.account
    ),
    upsert AS (
        INSERT INTO hopsplane.account_standing AS s (
            account_owner_id, suspended, notice_threshold, ledger_seq, changed_at)
        SELECT account, now_suspended, new_level, seq, now() FROM computed
        WHERE NOT known OR now_suspended <> was_suspended
           OR new_level IS DISTINCT FROM old_level
        ON CONFLICT (account_owner_id) DO UPDATE
        SET suspended = excluded.suspended, notice_threshold = excluded.notice_threshold,
            ledger_seq = excluded.ledger_seq, changed_at = excluded.changed_at
    ),
    changes AS (
        SELECT account, 'low_balance' AS kind, new_level AS threshold, balance, seq
        FROM computed
        WHERE new_level IS NOT NULL AND (old_level IS NULL OR new_level < old_level)
        UNION ALL
        SELECT account, 'suspended', NULL, balance, seq FROM computed
        WHERE now_suspended AND NOT was_suspended
        UNION ALL
        SELECT account, 'resumed', NULL, balance, seq FROM computed
        WHERE was_suspended AND NOT now_suspended
        UNION ALL  -- back above every threshold after a low-balance notice
        SELECT account, 'recovered',
               (SELECT max(t) FROM unnest(CAST(:thresholds AS numeric[])) AS t),
               balance, seq FROM computed
        WHERE old_level IS NOT NULL AND new_level IS NULL
    )
    SELECT hopsplane.publish_event(
               c.kind, c.account, c.kind || ':' || c.account || ':' || c.seq,
               jsonb_strip_nulls(jsonb_build_object(
                   'threshold', CAST(c.threshold AS text), 'balance', CAST(c.balance AS text),
                   'ledger_seq', c.seq))) AS id,
           c.account AS account_owner_id, c.kind, c.threshold, c.balance, c.seq AS ledger_seq,
           CASE WHEN c.kind IN ('suspended', 'resumed') AND NOT CAST(:announced AS boolean)
                THEN hopsplane.enqueue_job(
                    'credits.announce_standing',
                    jsonb_build_object('account', c.account, 'kind', c.kind,
                                       'ledger_seq', c.seq),
                    'standing:' || c.kind || ':' || c.account || ':' || c.seq)
           END AS announce_job
    FROM changes c
    """
)


# The standing of one posting: the heads that cannot have changed anything are dropped
# first (rules.standing_may_change, in SQL: above every threshold and zero before and
# after), so for a funded account the statement is one index probe.
_HEADS_END = "        ) AS h\n    ),\n    computed AS ("
_APPLY_STANDING_RAW = _psycopg_style(str(_APPLY_STANDING)).replace(
    _HEADS_END,
    "        ) AS h\n"
    "        WHERE NOT (h.balance > %(ceiling)s AND h.balance - %(amount)s > %(ceiling)s)\n"
    "    ),\n    computed AS (",
)
assert _APPLY_STANDING_RAW.count("%(ceiling)s") == 2, "the heads of _APPLY_STANDING moved"


def apply_standing(
    session: Session,
    account_ids: list[str],
    thresholds: tuple[Decimal, ...],
    *,
    announced: bool,
) -> list[BalanceEvent]:
    rows = session.execute(
        _APPLY_STANDING,
        {
            "accounts": account_ids,
            "thresholds": list(thresholds),
            "announced": announced,
        },
    )
    return [
        BalanceEvent(r.id, r.account_owner_id, r.kind, r.threshold, r.balance, r.ledger_seq)
        for r in rows
    ]


def accounts_at_or_below(session: Session, limit: Decimal) -> list[str]:
    """Accounts whose current balance is at most ``limit`` (one pass over the heads)."""
    rows = session.execute(
        text(
            "SELECT account_owner_id FROM (SELECT DISTINCT ON (account_owner_id) "
            "account_owner_id, balance FROM credits_ledger "
            "ORDER BY account_owner_id, seq DESC) AS heads WHERE balance <= :limit"
        ),
        {"limit": limit},
    )
    return [r[0] for r in rows]


_STANDING_OF = text(
    """
    SELECT NULLIF(m.account_id, m.user_id) AS account_owner_id, s.suspended,
           s.notice_threshold,
           (SELECT l.balance FROM credits_ledger l WHERE l.account_owner_id = m.user_id
            ORDER BY l.seq DESC LIMIT 1) AS balance,
           now() AS now,
           EXISTS (SELECT 1 FROM credits_ledger x WHERE x.account_owner_id = m.user_id
                   AND x.expires_at IS NOT NULL AND x.expires_at > now()) AS expiring
    FROM hopsplane.account_members m
    LEFT JOIN hopsplane.account_standing s ON s.account_owner_id = m.user_id
    WHERE m.user_id = :a
    """
)


def standing_of(
    session: Session, account_id: str
) -> tuple[bool, str | None, bool, Decimal | None, Decimal, datetime | None, bool]:
    """(exists, account_owner_id, suspended, notice threshold, balance, the transaction's
    time, holds unexpired expiring credit) of a user in one round trip: what
    :func:`account_owner_of`, :func:`standing`, :func:`balance` and :func:`db_now` read,
    and whether :func:`promotional` has anything to find."""
    row = session.execute(_STANDING_OF, {"a": account_id}).one_or_none()
    if row is None:
        return False, None, False, None, Decimal("0.00"), None, False
    balance = Decimal("0.00") if row.balance is None else Decimal(row.balance)
    return (True, row.account_owner_id, bool(row.suspended), row.notice_threshold, balance,
            row.now, bool(row.expiring))


def standing(session: Session, account_id: str) -> tuple[bool, Decimal | None]:
    """(suspended, announced notice threshold) of an account; (False, None) by default."""
    row = session.execute(
        text(
            "SELECT suspended, notice_threshold FROM hopsplane.account_standing "
            "WHERE account_owner_id = :a"
        ),
        {"a": account_id},
    ).one_or_none()
    return (False, None) if row is None else (bool(row[0]), row[1])


