"""SQL of hopsplane.api_keys. Keys are looked up by their SHA-256."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from hopsplane.db.models import ApiKey


def insert(session: Session, *, account_id: str, name: str, token_sha256: str,
           display_prefix: str, scopes: list[str], created_by: str,
           lifetime_days: int) -> ApiKey:
    key_id = session.execute(
        text(
            "INSERT INTO hopsplane.api_keys (account_owner_id, name, token_sha256,"
            " display_prefix, scopes, created_by, expires_at) VALUES (:a, :n, :h, :p,"
            " CAST(:s AS text[]), :by, now() + make_interval(days => :days)) RETURNING id"
        ),
        {"a": account_id, "n": name, "h": token_sha256, "p": display_prefix, "s": scopes,
         "by": created_by, "days": lifetime_days},
    ).scalar_one()
    return session.get_one(ApiKey, key_id)


_LIVE = text(
    "SELECT k.id, k.account_owner_id, k.scopes FROM hopsplane.api_keys k"
    " JOIN hopsplane.account_members m ON m.user_id = k.account_owner_id AND m.is_owner"
    " WHERE k.token_sha256 = :h AND k.revoked_at IS NULL AND k.expires_at > now()"
)


def live_by_digest(session: Session, token_sha256: str) -> Row[Any] | None:
    """The key with this hash (id, account, scopes), unless revoked, expired, or its
    account is gone (its owner joined another team): one round trip per request."""
    return session.execute(_LIVE, {"h": token_sha256}).one_or_none()


def touch(session: Session, key_id: uuid.UUID) -> None:
    """Note the use, at most once a minute: a key used by a busy script must not turn every
    read into a write of the same row."""
    session.execute(
        text(
            "UPDATE hopsplane.api_keys SET last_used_at = now() WHERE id = :id"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        ),
        {"id": key_id},
    )


def of_account(session: Session, account_id: str) -> Sequence[ApiKey]:
    return session.scalars(
        select(ApiKey).where(ApiKey.account_owner_id == account_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    ).all()


def get_for_update(session: Session, account_id: str, key_id: uuid.UUID) -> ApiKey | None:
    return session.scalars(
        select(ApiKey).where(ApiKey.account_owner_id == account_id, ApiKey.id == key_id)
        .with_for_update()
    ).one_or_none()


def revoke(session: Session, key_id: uuid.UUID) -> None:
    session.execute(
        text("UPDATE hopsplane.api_keys SET revoked_at = now() WHERE id = :id"
             " AND revoked_at IS NULL"),
        {"id": key_id},
    )
    session.expire_all()
