"""SQL of the balance events' outbox: claimed and marked by the billing dispatcher."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

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


