"""SQL of the ledger. The only module that reads or writes credits_ledger."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hopsplane.credits.schemas import ChainBreak, Posting
from hopsplane.db.models import LedgerEntry, User

# Serialises postings to one account for the length of the transaction. A transaction
# advisory lock writes nothing (a row lock would dirty the users row) and accounts whose
# keys differ never wait for each other; a rare hash collision only serialises two
# accounts, it never breaks anything (the chain is enforced by the table itself).
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('credits_ledger:' || :account, 0))")

_INSERT_NEXT = text(
    """
    INSERT INTO credits_ledger AS l (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type,
        description, stripe_payment_intent_id, idempotency_key, refund_of)
    SELECT :account, COALESCE(h.seq, 0) + 1, h.seq, h.balance, :amount,
           COALESCE(h.balance, 0) + :amount, :type, :description, :payment_intent, :key,
           :refund_of
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT seq, balance FROM credits_ledger
        WHERE account_owner_id = :account ORDER BY seq DESC LIMIT 1
    ) AS h ON true
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING l.*
    """
)


def account_owner_of(session: Session, account_id: str) -> tuple[bool, str | None]:
    """(exists, account_owner_id) of a user; account_owner_id is None for an owner."""
    row = session.execute(
        select(User.account_owner_id).where(User.id == account_id)
    ).one_or_none()
    return (False, None) if row is None else (True, row[0])


def lock_account(session: Session, account_id: str) -> None:
    session.execute(_LOCK, {"account": account_id})


def insert_next(session: Session, posting: Posting) -> LedgerEntry | None:
    """Append after the account's head; None when the idempotency key already exists."""
    stmt = select(LedgerEntry).from_statement(_INSERT_NEXT)
    return session.scalars(
        stmt,
        {
            "account": posting.account_owner_id,
            "amount": posting.amount,
            "type": posting.entry_type.value,
            "description": posting.description,
            "payment_intent": posting.stripe_payment_intent_id,
            "key": posting.idempotency_key,
            "refund_of": posting.refund_of,
        },
    ).one_or_none()


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
   OR NOT ((type IN ('purchase', 'grant') AND amount > 0)
           OR (type IN ('usage', 'refund') AND amount < 0))
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
