"""SQL of the ledger. The only module that reads or writes credits_ledger."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from hopsplane.credits.schemas import BalanceEvent, ChainBreak, LedgerEntryOut, Posting
from hopsplane.db.models import LedgerEntry

# An account's entries that are not drawn yet stay fewer than this (revision 0023's
# BACKLOG: post_next_entry draws the account at every multiple of it; insert_many too).
DRAW_BACKLOG = 256

# One posting, in one round trip: the owner check, the account's advisory lock and the
# INSERT ... SELECT chained after the head, run on the server in that order (revision 0010
# holds the function and says why it is safe).
_POST_NEXT_SQL = """
    SELECT account_found, member_of, entry_id, entry_seq, entry_amount, entry_balance,
           entry_created_at
    FROM hopsplane.post_next_entry(%(account)s, %(amount)s, %(type)s, %(description)s,
                                   %(payment_intent)s, %(key)s, %(refund_of)s,
                                   %(expires_at)s, %(refers_to)s, %(dispute)s, %(at)s)
    """


# Many accounts at once, always in the same (sorted) order so that two batches sharing
# accounts cannot deadlock; the same key as _OWNER_AND_LOCK_SQL, so single postings
# queue with batches.
_LOCK_MANY = text(
    """
    SELECT count(pg_advisory_xact_lock(hashtextextended('credits_ledger:' || a, 0)))
    FROM (SELECT DISTINCT a FROM unnest(CAST(:accounts AS text[])) AS a ORDER BY a) AS s
    """
)

# The set-based posting path: every posting of a batch in one statement. Postings whose
# key exists are left out first (so the numbering has no holes); each account's new
# entries are numbered after its head and chained with running sums. The caller holds
# the advisory locks of every account of the batch.
_INSERT_MANY = text(
    """
    WITH input AS (
        SELECT * FROM unnest(CAST(:accounts AS text[]), CAST(:amounts AS numeric[]),
                             CAST(:types AS text[]), CAST(:descriptions AS text[]),
                             CAST(:intents AS text[]), CAST(:keys AS text[]))
               WITH ORDINALITY AS p(account, amount, type, description, intent, key, ord)
    ),
    fresh AS (
        SELECT i.* FROM input i
        WHERE NOT EXISTS (SELECT 1 FROM credits_ledger x WHERE x.idempotency_key = i.key)
    ),
    numbered AS (
        SELECT f.*, row_number() OVER w AS rn, sum(f.amount) OVER w AS running
        FROM fresh f
        WINDOW w AS (PARTITION BY f.account ORDER BY f.ord
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    INSERT INTO credits_ledger AS l (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type,
        description, stripe_payment_intent_id, idempotency_key)
    SELECT n.account,
           COALESCE(h.seq, 0) + n.rn,
           NULLIF(COALESCE(h.seq, 0) + n.rn - 1, 0),
           CASE WHEN COALESCE(h.seq, 0) + n.rn > 1
                THEN COALESCE(h.balance, 0) + n.running - n.amount END,
           n.amount,
           COALESCE(h.balance, 0) + n.running,
           n.type, n.description, n.intent, n.key
    FROM numbered n
    LEFT JOIN LATERAL (  -- the head as of the statement's start (same for every row)
        SELECT seq, balance FROM credits_ledger
        WHERE account_owner_id = n.account ORDER BY seq DESC LIMIT 1
    ) AS h ON true
    ORDER BY n.account, n.rn
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.idempotency_key, l.account_owner_id, l.amount, l.balance, l.seq
    """
)

# After postings: bring each account's standing up to date with its head balance, and
# record what changed (in the same statement, from the standing read before the update).
# Level = the lowest threshold the balance is at or under; a notice is due when the level
# drops below the announced one, and a "recovered" notice when an announced level clears
# (the balance is back above every threshold; the announced level is set only by a
# low-balance notice, so a recovery always follows one). Suspensions and resumptions are
# stored as dispatched (:announced) when the caller announces them through the hooks in
# this transaction.
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
                WHERE h.balance <= t) AS new_level,
               CASE WHEN CAST(:announced AS boolean) THEN now() END AS announced_at
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
    )
    INSERT INTO hopsplane.balance_events AS e (
        account_owner_id, kind, threshold, balance, ledger_seq, dispatched_at)
    SELECT account, 'low_balance', new_level, balance, seq, NULL::timestamptz FROM computed
    WHERE new_level IS NOT NULL AND (old_level IS NULL OR new_level < old_level)
    UNION ALL
    SELECT account, 'suspended', NULL, balance, seq, announced_at FROM computed
    WHERE now_suspended AND NOT was_suspended
    UNION ALL
    SELECT account, 'resumed', NULL, balance, seq, announced_at FROM computed
    WHERE was_suspended AND NOT now_suspended
    UNION ALL  -- back above every threshold after a low-balance notice (issue 15)
    SELECT account, 'recovered', (SELECT max(t) FROM unnest(CAST(:thresholds AS numeric[])) AS t),
           balance, seq, NULL::timestamptz FROM computed
    WHERE old_level IS NOT NULL AND new_level IS NULL
    ON CONFLICT (account_owner_id, ledger_seq, kind) DO NOTHING
    RETURNING e.id, e.account_owner_id, e.kind, e.threshold, e.balance, e.ledger_seq
    """
)


# Serialises postings to one account for the length of the transaction. A transaction
# advisory lock writes nothing (a row lock would dirty the users row) and accounts whose
# keys differ never wait for each other; a rare hash collision only serialises two
# accounts, it never breaks anything (the chain is enforced by the table itself).
# Who is whose is the accounts domain's: read through its published view
# hopsplane.account_members (revision 0020); account_owner_id is NULL for an owner.
_OWNER_AND_LOCK_SQL = """
    SELECT NULLIF(account_id, user_id) AS account_owner_id,
           pg_advisory_xact_lock(hashtextextended('credits_ledger:' || user_id, 0)) AS locked
    FROM hopsplane.account_members WHERE user_id = %(account)s
"""


def account_owner_of(session: Session, account_id: str) -> tuple[bool, str | None]:
    """(exists, account_owner_id) of a user; account_owner_id is None for an owner."""
    row = session.execute(
        text(
            "SELECT NULLIF(account_id, user_id) FROM hopsplane.account_members "
            "WHERE user_id = :a"
        ),
        {"a": account_id},
    ).one_or_none()
    return (False, None) if row is None else (True, row[0])


def _driver(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection of the session's transaction. The two statements of every
    single posting run on it directly: SQLAlchemy's execution layer costs several times
    the CPU of the statements themselves, and on a small machine the clients' CPU is what
    bounds postings per second. Same connection, same transaction."""
    conn: psycopg.Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    return conn


def _fetch_one(session: Session, statement: str, params: dict[str, Any]) -> Any:
    """One row of a statement run on the session's psycopg connection, with psycopg's
    errors raised as SQLAlchemy's (what the callers and the API's handlers expect): a
    constraint refusal as IntegrityError, a value PostgreSQL cannot hold (a NUL in text)
    as DataError."""
    try:
        return _driver(session).execute(statement, params).fetchone()
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, params, exc) from exc
    except psycopg.DataError as exc:
        raise DataError(statement, params, exc) from exc


def owner_and_lock(session: Session, account_id: str) -> tuple[bool, str | None]:
    """(exists, account_owner_id) of a user, taking the account's ledger lock when the
    user exists: the owner check and the lock in one round trip."""
    row = _fetch_one(session, _OWNER_AND_LOCK_SQL, {"account": account_id})
    return (False, None) if row is None else (True, row[0])


def _posting_params(posting: Posting) -> dict[str, Any]:
    """The parameters of :data:`_POST_NEXT_SQL` for one posting."""
    return {
        "account": posting.account_owner_id,
        "amount": posting.amount,
        "type": posting.entry_type.value,
        "description": posting.description,
        "payment_intent": posting.stripe_payment_intent_id,
        "key": posting.idempotency_key,
        "refund_of": posting.refund_of,
        "expires_at": posting.expires_at,
        "refers_to": posting.refers_to,
        "dispute": posting.stripe_dispute_id,
        "at": posting.at,
    }


def post_next(session: Session, posting: Posting) -> tuple[bool, str | None, LedgerEntryOut | None]:
    """Append after the account's head under the account's lock, in one round trip.

    Returns (exists, account_owner_id, entry): nothing is written for an unknown account
    (exists False) or a team member (account_owner_id set); entry is None when the
    idempotency key already exists. A refund's purchase check must run before, under the
    lock taken by :func:`owner_and_lock` (the function takes it again; the lock stacks)."""
    params = _posting_params(posting)
    row = _fetch_one(session, _POST_NEXT_SQL, params)
    found, member_of, entry = _posted(posting, row)
    return found, member_of, entry


def _posted(
    posting: Posting, row: Any
) -> tuple[bool, str | None, LedgerEntryOut | None]:
    """(exists, account_owner_id, entry) from the one row of :data:`_POST_NEXT_SQL`."""
    assert row is not None  # the function returns exactly one row
    found, member_of, entry_id, seq, amount, after, created_at = row
    entry = None
    if entry_id is not None:
        entry = LedgerEntryOut(
            id=entry_id, account_owner_id=posting.account_owner_id, seq=seq,
            type=posting.entry_type, amount=amount, balance=after,
            description=posting.description,
            stripe_payment_intent_id=posting.stripe_payment_intent_id,
            refund_of=posting.refund_of, idempotency_key=posting.idempotency_key,
            created_at=created_at, expires_at=posting.expires_at,
            refers_to=posting.refers_to, stripe_dispute_id=posting.stripe_dispute_id,
        )
    return bool(found), member_of, entry


def _psycopg_style(statement: str) -> str:
    """A SQLAlchemy text() statement (``:name`` parameters) in psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement.replace("%", "%%"))


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


def post_now(
    conn: psycopg.Connection[Any],
    posting: Posting,
    thresholds: tuple[Decimal, ...],
    *,
    durable: bool,
) -> tuple[bool, str | None, LedgerEntryOut | None, list[BalanceEvent]]:
    """One posting as its own transaction, in ONE round trip: BEGIN, the posting
    (owner check, lock, chained INSERT, :func:`post_next`), the account's standing
    (:data:`_APPLY_STANDING`, which changes nothing unless a threshold or zero is crossed)
    and COMMIT are sent together in a pipeline, so the account's lock is never held while
    the client runs. ``durable=False`` commits without waiting for the WAL flush (the
    entry is lost with a crash of the server in the next few milliseconds, together with
    everything else of its transaction, never out of order with later entries).

    ``conn`` is idle (autocommit) and owned by the caller. Returns (exists,
    account_owner_id, entry, events) like :func:`post_next`."""
    params = _posting_params(posting)
    standing = {"accounts": [posting.account_owner_id], "thresholds": list(thresholds),
                "announced": False, "amount": posting.amount,
                "ceiling": max((*thresholds, Decimal(0)))}
    try:
        with conn.pipeline(), conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            posted = conn.execute(_POST_NEXT_SQL, params)
            events = conn.execute(_APPLY_STANDING_RAW, standing)
        row = posted.fetchone()
        event_rows = events.fetchall()
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(_POST_NEXT_SQL, params, exc) from exc
    except psycopg.DataError as exc:
        raise DataError(_POST_NEXT_SQL, params, exc) from exc
    found, member_of, entry = _posted(posting, row)
    return found, member_of, entry, [BalanceEvent(*r) for r in event_rows]


def entry_by_key_now(conn: psycopg.Connection[Any], key: str) -> LedgerEntryOut | None:
    """The entry of an idempotency key, read on an idle psycopg connection."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, account_owner_id, seq, type, amount, balance, description, "
            "stripe_payment_intent_id, refund_of, idempotency_key, created_at, expires_at, "
            "refers_to, stripe_dispute_id FROM credits_ledger WHERE idempotency_key = %s",
            (key,),
        ).fetchone()
    return None if row is None else LedgerEntryOut.model_validate(row)


def find_by_key(session: Session, key: str) -> LedgerEntry | None:
    return session.scalars(
        select(LedgerEntry).where(LedgerEntry.idempotency_key == key)
    ).one_or_none()


def find_by_id(session: Session, entry_id: uuid.UUID) -> LedgerEntry | None:
    return session.get(LedgerEntry, entry_id)


def find_purchase_by_payment_intent(session: Session, payment_intent_id: str) -> LedgerEntry | None:
    return session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.type == "purchase",
            LedgerEntry.stripe_payment_intent_id == payment_intent_id,
        )
    ).one_or_none()


def stripe_purchases(session: Session, since: datetime | None) -> list[LedgerEntry]:
    stmt = select(LedgerEntry).where(
        LedgerEntry.type == "purchase", LedgerEntry.stripe_payment_intent_id.is_not(None)
    )
    if since is not None:
        stmt = stmt.where(LedgerEntry.created_at >= since)
    return list(session.scalars(stmt.order_by(LedgerEntry.created_at)))


def refunded_so_far(session: Session, purchase_id: uuid.UUID) -> Decimal:
    """Sum of the refunds (a negative number or zero) that reference a purchase."""
    total = session.execute(
        text("SELECT COALESCE(sum(amount), 0) FROM credits_ledger WHERE refund_of = :id"),
        {"id": purchase_id},
    ).scalar_one()
    return Decimal(total)


def balance(session: Session, account_id: str) -> Decimal:
    value = session.execute(
        text(
            "SELECT balance FROM credits_ledger WHERE account_owner_id = :a "
            "ORDER BY seq DESC LIMIT 1"
        ),
        {"a": account_id},
    ).scalar_one_or_none()
    return Decimal("0.00") if value is None else Decimal(value)


def list_entries(
    session: Session, account_id: str, *, limit: int, before_seq: int | None = None
) -> list[LedgerEntry]:
    """Newest first, keyset-paginated on the account's sequence."""
    stmt = select(LedgerEntry).where(LedgerEntry.account_owner_id == account_id)
    if before_seq is not None:
        stmt = stmt.where(LedgerEntry.seq < before_seq)
    return list(session.scalars(stmt.order_by(LedgerEntry.seq.desc()).limit(limit)))


_CHAIN_BREAKS = """
WITH ordered AS (
    SELECT account_owner_id, seq, amount, balance, prev_seq, prev_balance, type,
           lag(seq) OVER w AS real_prev_seq,
           lag(balance) OVER w AS real_prev_balance
    FROM credits_ledger
    {where}
    WINDOW w AS (PARTITION BY account_owner_id ORDER BY seq)
)
SELECT account_owner_id, seq,
       CASE
         WHEN seq <> COALESCE(real_prev_seq, 0) + 1
           THEN format('sequence gap: entry %s follows %s', seq, COALESCE(real_prev_seq, 0))
         WHEN balance <> COALESCE(real_prev_balance, 0) + amount
           THEN format('balance %s <> previous balance %s + amount %s',
                       balance, COALESCE(real_prev_balance, 0), amount)
         WHEN prev_balance IS DISTINCT FROM real_prev_balance
           OR prev_seq IS DISTINCT FROM real_prev_seq
           THEN format('link (%s, %s) does not match the previous entry (%s, %s)',
                       prev_seq, prev_balance, real_prev_seq, real_prev_balance)
         ELSE format('amount %s has the wrong sign for a %s', amount, type)
       END AS problem
FROM ordered
WHERE seq <> COALESCE(real_prev_seq, 0) + 1
   OR balance <> COALESCE(real_prev_balance, 0) + amount
   OR prev_balance IS DISTINCT FROM real_prev_balance
   OR prev_seq IS DISTINCT FROM real_prev_seq
   OR NOT ((type IN ('purchase', 'grant', 'dispute_reversal') AND amount > 0)
           OR (type IN ('usage', 'refund', 'expiry', 'dispute') AND amount < 0))
ORDER BY account_owner_id, seq
LIMIT :max_breaks
"""


def chain_breaks(
    session: Session, account_id: str | None = None, *, max_breaks: int = 1000
) -> list[ChainBreak]:
    where = "WHERE account_owner_id = :account" if account_id else ""
    rows = session.execute(
        text(_CHAIN_BREAKS.format(where=where)),
        {"account": account_id, "max_breaks": max_breaks},
    )
    return [ChainBreak(r.account_owner_id, r.seq, r.problem) for r in rows]


def ledger_size(session: Session, account_id: str | None = None) -> tuple[int, int]:
    """(accounts, entries) in the ledger, or of one account."""
    where = "WHERE account_owner_id = :account" if account_id else ""
    row = session.execute(
        text(f"SELECT count(DISTINCT account_owner_id), count(*) FROM credits_ledger {where}"),
        {"account": account_id},
    ).one()
    return int(row[0]), int(row[1])


# --- set-based posting and standing (issue 4) -------------------------------------------


def lock_accounts(session: Session, account_ids: list[str]) -> None:
    session.execute(_LOCK_MANY, {"accounts": account_ids})


def insert_many(
    session: Session, postings: list[Posting]
) -> dict[str, tuple[str, Decimal, Decimal]]:
    """Append every posting whose key is new, chained after each account's head, in one
    statement. Returns {key: (account, amount, balance)} of the inserted entries."""
    rows = session.execute(
        _INSERT_MANY,
        {
            "accounts": [p.account_owner_id for p in postings],
            "amounts": [p.amount for p in postings],
            "types": [p.entry_type.value for p in postings],
            "descriptions": [p.description for p in postings],
            "intents": [p.stripe_payment_intent_id for p in postings],
            "keys": [p.idempotency_key for p in postings],
        },
    )
    inserted = {}
    spans: dict[str, tuple[int, int]] = {}
    for key, account, amount, after, seq in rows:
        inserted[key] = (account, amount, after)
        low, high = spans.get(account, (seq, seq))
        spans[account] = (min(low, seq), max(high, seq))
    # the accounts whose new entries reached a multiple of BACKLOG (revision 0023) are
    # drawn now, as post_next_entry does: no account's backlog outgrows it
    behind = sorted(a for a, (low, high) in spans.items()
                    if high // DRAW_BACKLOG > (low - 1) // DRAW_BACKLOG)
    if behind:
        catch_up(session, behind)
    return inserted


def find_by_keys(session: Session, keys: list[str]) -> list[LedgerEntry]:
    return list(
        session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(keys)))
    )


def owners_among(session: Session, account_ids: list[str]) -> dict[str, str | None]:
    """{user id: account_owner_id} for the ids that exist (None for owners)."""
    rows = session.execute(
        text(
            "SELECT user_id, NULLIF(account_id, user_id) FROM hopsplane.account_members "
            "WHERE user_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": account_ids},
    )
    return {r[0]: r[1] for r in rows}


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


def entry_count(session: Session, account_id: str) -> int:
    value = session.execute(
        text("SELECT count(*) FROM credits_ledger WHERE account_owner_id = :a"), {"a": account_id}
    ).scalar_one()
    return int(value)


# -- the outbox of balance events: dispatch (billing announces them through the service) --

def claim_events(session: Session, limit: int) -> list[dict[str, Any]]:
    """Undispatched balance events (oldest first), locked so that two dispatchers never
    take the same one, with the owner's email."""
    rows = session.execute(
        text(
            """
            SELECT e.id, e.account_owner_id, e.kind, e.threshold, e.balance, e.ledger_seq,
                   e.amount, e.expires_at, u.email
            FROM hopsplane.balance_events e
            JOIN hopsplane.account_members u ON u.user_id = e.account_owner_id
            WHERE e.dispatched_at IS NULL
            ORDER BY e.id
            LIMIT :limit
            FOR UPDATE OF e SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return [dict(r._mapping) for r in rows]


def take_events(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """Mark these events dispatched (those not yet) and return them with the owner's
    email, in one statement; the caller un-marks what it could not deliver."""
    rows = session.execute(
        text(
            """
            UPDATE hopsplane.balance_events e SET dispatched_at = now()
            FROM hopsplane.account_members u
            WHERE e.id = ANY(CAST(:ids AS bigint[])) AND e.dispatched_at IS NULL
              AND u.user_id = e.account_owner_id
            RETURNING e.id, e.account_owner_id, e.kind, e.threshold, e.balance,
                      e.ledger_seq, e.amount, e.expires_at, u.email
            """
        ),
        {"ids": ids},
    )
    return sorted((dict(r._mapping) for r in rows), key=lambda e: int(e["id"]))


def unmark_events(session: Session, ids: list[int]) -> None:
    session.execute(
        text(
            "UPDATE hopsplane.balance_events SET dispatched_at = NULL "
            "WHERE id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": ids},
    )


def mark_events_dispatched(session: Session, ids: list[int]) -> None:
    session.execute(
        text(
            "UPDATE hopsplane.balance_events SET dispatched_at = now() "
            "WHERE id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"ids": ids},
    )


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


# Only accounts drawn up to their head: a notice states what is left exactly.
_RECORD_EXPIRING = text(
    """
    INSERT INTO hopsplane.balance_events AS e (
        account_owner_id, kind, threshold, balance, ledger_seq, amount, expires_at)
    SELECT l.account_owner_id, 'credits_expiring', NULL, h.balance, l.seq, o.open,
           l.expires_at
    FROM credits_ledger l
    JOIN hopsplane.credit_lots o ON o.entry_id = l.id
    JOIN hopsplane.credit_checkpoints c ON c.account_owner_id = l.account_owner_id
    CROSS JOIN LATERAL (SELECT h.seq, h.balance FROM credits_ledger h
                        WHERE h.account_owner_id = l.account_owner_id
                        ORDER BY h.seq DESC LIMIT 1) AS h
    WHERE l.expires_at IS NOT NULL AND l.expires_at > :now AND l.expires_at <= :until
      AND o.open > 0 AND h.seq = c.seq
    ON CONFLICT (account_owner_id, ledger_seq, kind) DO NOTHING
    RETURNING e.id
    """
)


def record_expiring(session: Session, now: datetime, until: datetime) -> int:
    """One ``credits_expiring`` balance event per grant that expires in (now, until] with
    something left; the event's ``ledger_seq`` is the grant's, so a grant is announced
    once whatever the number of runs (the unique key of balance_events)."""
    return len(session.execute(_RECORD_EXPIRING, {"now": now, "until": until}).all())


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
