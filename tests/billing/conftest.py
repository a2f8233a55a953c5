"""Usage rows are written by the metering issue through upserts; the tests write them
directly, the same way (INSERT ... ON CONFLICT (account_owner_id, date) DO UPDATE)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session


def upsert_usage(
    session: Session,
    account: str,
    day: date,
    units: str | Decimal,
    breakdown: dict[str, str] | None = None,
) -> None:
    """Set the day's units (late usage raises them), like the metering upsert does."""
    units = Decimal(units)
    breakdown = breakdown or {account: str(units)}
    session.execute(
        text(
            """
            INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown)
            VALUES (:a, :d, :u, CAST(:b AS jsonb))
            ON CONFLICT (account_owner_id, date) DO UPDATE
            SET compute_units = excluded.compute_units,
                user_breakdown = excluded.user_breakdown, updated_at = now()
            """
        ),
        {"a": account, "d": day, "u": units, "b": json.dumps(breakdown)},
    )


def usage_row(session: Session, account: str, day: date) -> tuple[Decimal, Decimal, Decimal]:
    """(unit_price, total_cost, billed_amount) of a day."""
    row = session.execute(
        text(
            "SELECT unit_price, total_cost, billed_amount FROM usage_tracking "
            "WHERE account_owner_id = :a AND date = :d"
        ),
        {"a": account, "d": day},
    ).one()
    return row[0], row[1], row[2]
