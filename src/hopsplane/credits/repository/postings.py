"""SQL of appending to the ledger: one posting (in one round trip, or as its own
transaction), and many at once, set-based; the owner checks and the accounts' locks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from hopsplane.credits.repository.connection import _fetch_one
from hopsplane.credits.repository.lots import catch_up
from hopsplane.credits.repository.standing import _APPLY_STANDING_RAW
from hopsplane.credits.schemas import BalanceEvent, LedgerEntryOut, Posting

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


