"""SQL that reads the ledger: entries by key, id or payment, balances, pages of
history, and the chain check."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hopsplane.credits.schemas import ChainBreak
from hopsplane.db.models import LedgerEntry


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


def find_by_keys(session: Session, keys: list[str]) -> list[LedgerEntry]:
    return list(
        session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(keys)))
    )


def entry_count(session: Session, account_id: str) -> int:
    value = session.execute(
        text("SELECT count(*) FROM credits_ledger WHERE account_owner_id = :a"), {"a": account_id}
    ).scalar_one()
    return int(value)


