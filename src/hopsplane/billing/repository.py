"""SQL of billing: usage rows to charge, what was charged, prices, member budgets and their
notices (the balance events outbox is credits'; billing dispatches it through credits.service).

The ledger itself is written only through hopsplane.credits.service (post / post_many).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hopsplane.billing.schemas import BudgetRow, PendingCharge
from hopsplane.db.models import PriceOverride, UsageTracking


def accounts_to_bill(
    session: Session, through: date, *, after: str | None, limit: int,
    among: Sequence[str] | None = None,
) -> list[str]:
    """Accounts (all, or those ``among`` these) with something left to charge up to
    ``through``, in id order (keyset)."""
    # Two statements, not `(:after IS NULL OR account_owner_id > :after)`: a prepared
    # statement's generic plan cannot start the index scan at :after through an OR, and
    # would walk the index from the start on every batch (quadratic over a run).
    keyset = "AND account_owner_id > :after" if after is not None else ""
    only = "AND account_owner_id = ANY(CAST(:among AS text[]))" if among is not None else ""
    rows = session.execute(
        text(
            f"""
            SELECT DISTINCT account_owner_id FROM usage_tracking
            WHERE total_cost > billed_amount AND date <= :through {keyset} {only}
            ORDER BY account_owner_id
            LIMIT :limit
            """
        ),
        {"through": through, "after": after, "limit": limit,
         "among": list(among) if among is not None else None},
    )
    return [r[0] for r in rows]


def take_pending_charges(
    session: Session, accounts: list[str], through: date, per_account: int
) -> list[PendingCharge]:
    """Mark the batch's rows with something left to charge as charged (billed_amount :=
    total_cost) and return them with what was charged before, in one statement. The rows
    stay locked until commit, so a late-usage fold of the same row waits; the caller posts
    the debits in the same transaction (a failure rolls the marks back).

    Rows another transaction holds right now (a usage fold, another billing run) are
    skipped, not waited for: they are charged by the next run. Billing therefore never
    waits on a row lock and cannot close a deadlock cycle with the folds, which lock the
    day rows in their own order.

    At most ``per_account`` days of each account, its oldest: one account's backlog is
    charged in bounded slices (the caller comes back for the rest), so no transaction
    grows with it."""
    rows = session.execute(
        text(
            """
            UPDATE usage_tracking u SET billed_amount = u.total_cost
            FROM (
                SELECT t.id, t.billed_amount
                FROM unnest(CAST(:accounts AS text[])) AS a(account_owner_id)
                CROSS JOIN LATERAL (
                    SELECT id, billed_amount FROM usage_tracking
                    WHERE account_owner_id = a.account_owner_id AND date <= :through
                      AND total_cost > billed_amount
                    ORDER BY date
                    LIMIT :per_account
                    FOR UPDATE SKIP LOCKED
                ) AS t
            ) AS p
            WHERE u.id = p.id
            RETURNING u.id, u.account_owner_id, u.date, u.compute_units, u.total_cost,
                      p.billed_amount
            """
        ),
        {"accounts": accounts, "through": through, "per_account": per_account},
    )
    charges = [
        PendingCharge(r.id, r.account_owner_id, r.date, r.compute_units, r.total_cost,
                      r.billed_amount)
        for r in rows
    ]
    charges.sort(key=lambda c: (c.account_owner_id, c.date))
    return charges


def usage_days(
    session: Session, account_id: str, date_from: date, date_to: date
) -> list[UsageTracking]:
    stmt = (
        select(UsageTracking)
        .where(
            UsageTracking.account_owner_id == account_id,
            UsageTracking.date >= date_from,
            UsageTracking.date <= date_to,
        )
        .order_by(UsageTracking.date)
    )
    return list(session.scalars(stmt))


def billed_dates_from(session: Session, account_id: str, day: date) -> date | None:
    """The latest date on or after ``day`` with a (partly) billed row, if any."""
    value = session.execute(
        text(
            "SELECT max(date) FROM usage_tracking WHERE account_owner_id = :a "
            "AND date >= :d AND billed_amount > 0"
        ),
        {"a": account_id, "d": day},
    ).scalar_one()
    return value if isinstance(value, date) else None


def upsert_override(
    session: Session,
    account_id: str,
    effective_from: date,
    unit_price: Decimal,
    reason: str,
    set_by: str | None,
) -> PriceOverride:
    row = session.execute(
        text(
            """
            INSERT INTO hopsplane.price_overrides AS o
                (account_owner_id, effective_from, unit_price, reason, set_by)
            VALUES (:a, :d, :p, :r, :by)
            ON CONFLICT (account_owner_id, effective_from) DO UPDATE
            SET unit_price = excluded.unit_price, reason = excluded.reason,
                set_by = excluded.set_by, created_at = now()
            RETURNING o.account_owner_id, o.effective_from
            """
        ),
        {"a": account_id, "d": effective_from, "p": unit_price, "r": reason, "by": set_by},
    ).one()
    override = session.get(PriceOverride, (row[0], row[1]), populate_existing=True)
    assert override is not None
    return override


def reprice_from(session: Session, account_id: str, day: date) -> int:
    """Let the price trigger re-read the override on the account's rows from ``day``."""
    result = session.execute(
        text(
            "UPDATE usage_tracking SET unit_price = unit_price, updated_at = now() "
            "WHERE account_owner_id = :a AND date >= :d"
        ),
        {"a": account_id, "d": day},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_overrides(session: Session, account_id: str) -> list[PriceOverride]:
    stmt = (
        select(PriceOverride)
        .where(PriceOverride.account_owner_id == account_id)
        .order_by(PriceOverride.effective_from.desc())
    )
    return list(session.scalars(stmt))


# --- member budgets: hopsplane.member_budgets -----------------------------------------


def budgets(
    session: Session, *, account_owner_id: str | None = None, member_id: str | None = None,
    lock: bool = False, account_owner_ids: Sequence[str] | None = None,
) -> list[BudgetRow]:
    """Budgets (all, an account's, or one member's) with the member's email and name;
    ``lock`` holds them for this transaction so that two evaluations (a billing run and
    an owner's change) never act on the same budget at once. ``still_member`` is false
    once the person has left the account."""
    where = ("WHERE b.account_owner_id = :a" if account_owner_id is not None
             else "WHERE b.member_id = :m" if member_id is not None
             else "WHERE b.account_owner_id = ANY(CAST(:many AS text[]))"
             if account_owner_ids is not None else "")
    rows = session.execute(
        text(
            f"""
            SELECT b.member_id, b.account_owner_id, b.monthly_budget, b.enforce,
                   b.stopped_month,
                   COALESCE(u.account_id = b.account_owner_id AND NOT u.is_owner, false)
                     AS still_member,
                   u.email, u.name, b.noticed_month, b.noticed_budget, b.noticed_percent
            FROM hopsplane.member_budgets b
            LEFT JOIN hopsplane.account_members u ON u.user_id = b.member_id
            {where}
            ORDER BY b.member_id
            {"FOR UPDATE OF b" if lock else ""}
            """
        ),
        {"a": account_owner_id, "m": member_id,
         "many": list(account_owner_ids) if account_owner_ids is not None else None},
    )
    return [BudgetRow(*r) for r in rows]


def budget_usage(
    session: Session, member_ids: list[str], first: date, next_first: date
) -> list[tuple[str, Decimal, Decimal]]:
    """(member, units, unit price) of each day of the month on which a budgeted member
    has a share of their account's usage (usage_tracking.user_breakdown), in one
    statement for every member."""
    rows = session.execute(
        text(
            """
            SELECT b.member_id, CAST(t.user_breakdown ->> b.member_id AS numeric), t.unit_price
            FROM hopsplane.member_budgets b
            JOIN usage_tracking t ON t.account_owner_id = b.account_owner_id
             AND t.date >= :first AND t.date < :next AND t.user_breakdown ? b.member_id
            WHERE b.member_id = ANY(CAST(:members AS text[]))
            """
        ),
        {"members": member_ids, "first": first, "next": next_first},
    )
    return [(str(r[0]), Decimal(r[1]), Decimal(r[2])) for r in rows]


def upsert_budget(
    session: Session, member_id: str, account_owner_id: str, budget: Decimal, enforce: bool,
    set_by: str | None,
) -> None:
    session.execute(
        text(
            """
            INSERT INTO hopsplane.member_budgets (
                member_id, account_owner_id, monthly_budget, enforce, set_by)
            VALUES (:m, :a, :b, :e, :by)
            ON CONFLICT (member_id) DO UPDATE
            SET account_owner_id = excluded.account_owner_id,
                monthly_budget = excluded.monthly_budget, enforce = excluded.enforce,
                set_by = excluded.set_by, updated_at = now()
            """
        ),
        {"m": member_id, "a": account_owner_id, "b": budget, "e": enforce, "by": set_by},
    )


def delete_budgets(session: Session, member_ids: list[str]) -> None:
    session.execute(
        text("DELETE FROM hopsplane.member_budgets "
             "WHERE member_id = ANY(CAST(:m AS text[]))"),
        {"m": member_ids},
    )


def set_stopped(session: Session, member_ids: list[str], month: date | None) -> None:
    session.execute(
        text("UPDATE hopsplane.member_budgets SET stopped_month = :month "
             "WHERE member_id = ANY(CAST(:m AS text[]))"),
        {"m": member_ids, "month": month},
    )


def set_noticed(session: Session, rows: list[tuple[str, date, Decimal, int]]) -> None:
    """Record (member, month, budget, percent): the highest threshold announced."""
    if not rows:
        return
    session.execute(
        text(
            """
            UPDATE hopsplane.member_budgets b
            SET noticed_month = n.month, noticed_budget = n.budget, noticed_percent = n.percent
            FROM unnest(CAST(:members AS text[]), CAST(:months AS date[]),
                        CAST(:budgets AS numeric[]), CAST(:percents AS smallint[]))
                 AS n(member_id, month, budget, percent)
            WHERE b.member_id = n.member_id
            """
        ),
        {"members": [r[0] for r in rows], "months": [r[1] for r in rows],
         "budgets": [r[2] for r in rows], "percents": [r[3] for r in rows]},
    )
