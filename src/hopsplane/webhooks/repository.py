"""SQL of outbound webhooks: hopsplane.webhook_endpoints and hopsplane.webhook_deliveries.
Deliveries are inserted by ``hopsplane.publish_event`` (revision 0027) in the causing
transaction; this module reads them and records their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

_ENDPOINT_COLUMNS = (
    "id, url, description, event_types, enabled, disabled_reason, created_at, "
    "last_success_at, previous_until"
)


def count(session: Session, account: str) -> int:
    return int(session.execute(text(
        "SELECT count(*) FROM hopsplane.webhook_endpoints WHERE account_owner_id = :a"),
        {"a": account}).scalar_one())


def lock_account(session: Session, account: str) -> None:
    """Serialise changes to one account's endpoints (the count limit holds under races)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || :a, 0))"),
                    {"a": account})


def insert(session: Session, account: str, url: str, description: str, types: list[str],
           secret: str, created_by: str | None) -> RowMapping:
    return session.execute(text(
        f"""
        INSERT INTO hopsplane.webhook_endpoints (account_owner_id, url, description,
            event_types, secret, created_by)
        VALUES (:a, :url, :d, CAST(:types AS text[]), :secret, :by)
        RETURNING {_ENDPOINT_COLUMNS}
        """), {"a": account, "url": url, "d": description, "types": types, "secret": secret,
               "by": created_by}).mappings().one()


def endpoints(session: Session, account: str) -> list[RowMapping]:
    return list(session.execute(text(
        f"SELECT {_ENDPOINT_COLUMNS} FROM hopsplane.webhook_endpoints "
        "WHERE account_owner_id = :a ORDER BY created_at, id"), {"a": account}).mappings())


def endpoint(session: Session, account: str, endpoint_id: uuid.UUID, *, lock: bool = False
             ) -> RowMapping | None:
    return session.execute(text(
        f"SELECT {_ENDPOINT_COLUMNS}, secret, previous_secret "
        "FROM hopsplane.webhook_endpoints WHERE id = :id AND account_owner_id = :a"
        + (" FOR UPDATE" if lock else "")),
        {"id": endpoint_id, "a": account}).mappings().one_or_none()


def delete(session: Session, account: str, endpoint_id: uuid.UUID) -> bool:
    result = session.execute(text(
        "DELETE FROM hopsplane.webhook_endpoints WHERE id = :id AND account_owner_id = :a"),
        {"id": endpoint_id, "a": account})
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def rotate(session: Session, endpoint_id: uuid.UUID, secret: str, previous: str,
           until: datetime) -> RowMapping:
    return session.execute(text(
        f"""
        UPDATE hopsplane.webhook_endpoints
        SET secret = :secret, previous_secret = :previous, previous_until = :until
        WHERE id = :id
        RETURNING {_ENDPOINT_COLUMNS}
        """), {"id": endpoint_id, "secret": secret, "previous": previous,
               "until": until}).mappings().one()


def change(session: Session, endpoint_id: uuid.UUID, *, event_types: list[str],
           description: str, enabled: bool, disabled_reason: str | None) -> None:
    session.execute(text(
        "UPDATE hopsplane.webhook_endpoints SET event_types = CAST(:types AS text[]), "
        "description = :d, enabled = :e, disabled_reason = :r WHERE id = :id"),
        {"id": endpoint_id, "types": event_types, "d": description, "e": enabled,
         "r": disabled_reason})


def set_enabled(session: Session, endpoint_id: uuid.UUID, enabled: bool,
                reason: str | None) -> None:
    session.execute(text(
        "UPDATE hopsplane.webhook_endpoints SET enabled = :e, disabled_reason = :r "
        "WHERE id = :id"), {"id": endpoint_id, "e": enabled, "r": reason})


_DELIVERY_COLUMNS = (
    "d.id, d.message_id, d.event_type, d.status, d.attempts, d.response_status, "
    "d.response_prefix, d.error, d.created_at, d.last_attempt_at"
)


def deliveries(session: Session, endpoint_id: uuid.UUID, limit: int) -> list[RowMapping]:
    return list(session.execute(text(
        f"SELECT {_DELIVERY_COLUMNS} FROM hopsplane.webhook_deliveries d "
        "WHERE d.endpoint_id = :e ORDER BY d.created_at DESC, d.id LIMIT :n"),
        {"e": endpoint_id, "n": limit}).mappings())


def delivery(session: Session, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
             ) -> RowMapping | None:
    return session.execute(text(
        f"SELECT {_DELIVERY_COLUMNS} FROM hopsplane.webhook_deliveries d "
        "WHERE d.id = :id AND d.endpoint_id = :e"),
        {"id": delivery_id, "e": endpoint_id}).mappings().one_or_none()


def to_send(session: Session, delivery_id: uuid.UUID) -> RowMapping | None:
    """A delivery with what sending it needs from its endpoint (secrets encrypted)."""
    return session.execute(text(
        """
        SELECT d.id, d.message_id, d.event_type, d.payload, d.status, d.created_at,
               d.account_owner_id, e.id AS endpoint_id, e.url, e.enabled, e.secret,
               e.previous_secret, e.previous_until, e.last_success_at
        FROM hopsplane.webhook_deliveries d
        JOIN hopsplane.webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.id = :id
        """), {"id": delivery_id}).mappings().one_or_none()


def record(session: Session, delivery_id: uuid.UUID, status: str, response_status: int | None,
           prefix: str | None, error: str | None) -> None:
    session.execute(text(
        """
        UPDATE hopsplane.webhook_deliveries
        SET status = :s, attempts = attempts + 1, response_status = :rs,
            response_prefix = :p, error = :err, last_attempt_at = now()
        WHERE id = :id
        """), {"id": delivery_id, "s": status, "rs": response_status, "p": prefix,
               "err": error})
    if status == "succeeded":
        session.execute(text(
            "UPDATE hopsplane.webhook_endpoints SET last_success_at = now() "
            "WHERE id = (SELECT endpoint_id FROM hopsplane.webhook_deliveries WHERE id = :id)"),
            {"id": delivery_id})


def delete_finished(session: Session, before: datetime) -> int:
    result = session.execute(text(
        "DELETE FROM hopsplane.webhook_deliveries WHERE status <> 'pending' "
        "AND created_at < :before"), {"before": before})
    return int(result.rowcount)  # type: ignore[attr-defined]


def reopen(session: Session, delivery_id: uuid.UUID) -> None:
    session.execute(text(
        "UPDATE hopsplane.webhook_deliveries SET status = 'pending' WHERE id = :id"),
        {"id": delivery_id})
