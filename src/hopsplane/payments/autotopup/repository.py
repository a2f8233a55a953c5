"""SQL of auto top-up: hopsplane.auto_topup, auto_topup_consents, auto_topup_attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from hopsplane.payments.autotopup.rules import ACTIVE

_STATE_COLUMNS = frozenset({
    "status", "paused_reason", "threshold", "amount", "currency", "payment_method_id",
    "card_label", "consent_id", "consecutive_failures", "day", "day_count", "day_amount",
})
_ATTEMPT_COLUMNS = frozenset({
    "status", "tries", "next_try_at", "payment_intent_id", "outcome",
})
_ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE) + ")"


def state(session: Session, account_id: str, *, lock: bool = False) -> RowMapping | None:
    sql = "SELECT * FROM hopsplane.auto_topup WHERE account_owner_id = :a"
    if lock:
        sql += " FOR UPDATE"
    return session.execute(text(sql), {"a": account_id}).mappings().one_or_none()


def lock_watching(session: Session, accounts: Sequence[str]) -> list[RowMapping]:
    """The rows of the accounts whose auto top-up is on, locked in account order (the
    deciding transaction's lock: two crossings of one account are decided one after the
    other)."""
    return list(session.execute(
        text("SELECT * FROM hopsplane.auto_topup WHERE account_owner_id = ANY(:a) "
             "AND status = 'on' ORDER BY account_owner_id FOR UPDATE"),
        {"a": list(accounts)},
    ).mappings())


def upsert_settings(
    session: Session, account_id: str, threshold: Decimal, amount: Decimal, currency: str
) -> RowMapping:
    """Create the row (status off) or change its threshold and amount; returns it locked."""
    session.execute(
        text("INSERT INTO hopsplane.auto_topup (account_owner_id, threshold, amount, currency)"
             " VALUES (:a, :t, :m, :c) ON CONFLICT (account_owner_id) DO UPDATE SET "
             "threshold = EXCLUDED.threshold, amount = EXCLUDED.amount, "
             "currency = EXCLUDED.currency, updated_at = now()"),
        {"a": account_id, "t": threshold, "m": amount, "c": currency},
    )
    row = state(session, account_id, lock=True)
    assert row is not None
    return row


def _update(session: Session, table: str, key_column: str, key: object,
            allowed: frozenset[str], fields: dict[str, Any]) -> None:
    """SET the given columns (named by code, never by input: checked against ``allowed``)."""
    unknown = set(fields) - allowed
    if unknown:  # pragma: no cover - a programming error
        raise ValueError(f"not columns of {table}: {sorted(unknown)}")
    sets = ", ".join(f"{k} = :{k}" for k in fields)
    session.execute(
        text(f"UPDATE hopsplane.{table} SET {sets}, updated_at = now() "
             f"WHERE {key_column} = :row_key"),
        {**fields, "row_key": key},
    )


def update_state(session: Session, account_id: str, **fields: Any) -> None:
    _update(session, "auto_topup", "account_owner_id", account_id, _STATE_COLUMNS, fields)


def insert_consent(
    session: Session, account_id: str, given_by: str, terms: str, threshold: Decimal,
    amount: Decimal,
) -> uuid.UUID:
    return uuid.UUID(str(session.execute(
        text("INSERT INTO hopsplane.auto_topup_consents "
             "(account_owner_id, given_by, terms, threshold, amount) "
             "VALUES (:a, :b, :t, :th, :m) RETURNING id"),
        {"a": account_id, "b": given_by, "t": terms, "th": threshold, "m": amount},
    ).scalar_one()))


def revoke_consent(session: Session, consent_id: uuid.UUID, revoked_by: str) -> None:
    session.execute(
        text("UPDATE hopsplane.auto_topup_consents SET revoked_at = now(), revoked_by = :b "
             "WHERE id = :id AND revoked_at IS NULL"),
        {"id": consent_id, "b": revoked_by},
    )


def consent(session: Session, consent_id: uuid.UUID) -> RowMapping | None:
    return session.execute(
        text("SELECT * FROM hopsplane.auto_topup_consents WHERE id = :id"), {"id": consent_id}
    ).mappings().one_or_none()


def insert_attempt(
    session: Session, account_id: str, crossing_key: str, threshold: Decimal, amount: Decimal,
    balance: Decimal, next_try_at: datetime,
) -> uuid.UUID | None:
    """A new attempt for a crossing, or None when this crossing already has one or another
    attempt of the account is active (either unique index refuses it)."""
    found = session.execute(
        text("INSERT INTO hopsplane.auto_topup_attempts "
             "(account_owner_id, crossing_key, threshold, amount, balance_at_crossing, "
             "next_try_at) VALUES (:a, :k, :t, :m, :b, :n) ON CONFLICT DO NOTHING "
             "RETURNING id"),
        {"a": account_id, "k": crossing_key, "t": threshold, "m": amount, "b": balance,
         "n": next_try_at},
    ).scalar_one_or_none()
    return uuid.UUID(str(found)) if found is not None else None


def attempt(session: Session, attempt_id: uuid.UUID, *, lock: bool = False
            ) -> RowMapping | None:
    sql = "SELECT * FROM hopsplane.auto_topup_attempts WHERE id = :id"
    if lock:
        sql += " FOR UPDATE"
    return session.execute(text(sql), {"id": attempt_id}).mappings().one_or_none()


def update_attempt(session: Session, attempt_id: uuid.UUID, **fields: Any) -> None:
    _update(session, "auto_topup_attempts", "id", attempt_id, _ATTEMPT_COLUMNS, fields)


def active_attempts(session: Session, account_id: str) -> list[RowMapping]:
    return list(session.execute(
        text("SELECT * FROM hopsplane.auto_topup_attempts WHERE account_owner_id = :a AND "
             f"status IN {_ACTIVE_SQL} FOR UPDATE"),
        {"a": account_id},
    ).mappings())


def attempts(session: Session, account_id: str, limit: int) -> list[RowMapping]:
    return list(session.execute(
        text("SELECT * FROM hopsplane.auto_topup_attempts WHERE account_owner_id = :a "
             "ORDER BY created_at DESC, id LIMIT :n"),
        {"a": account_id, "n": limit},
    ).mappings())

