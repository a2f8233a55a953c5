"""SQL of hopsplane.sessions. Tokens are looked up by their SHA-256; the table never holds
a token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.orm import Session

from hopsplane.db.models import WebSession


def insert(
    session: Session, token_sha256: str, user_id: str, sub: str, email: str | None,
    email_verified: bool, name: str | None, max_age_seconds: int,
) -> None:
    session.execute(
        text(
            "INSERT INTO hopsplane.sessions (token_sha256, user_id, sub, email, email_verified,"
            " name, expires_at) VALUES (:h, :u, :sub, :email, :verified, :name,"
            " now() + make_interval(secs => :age))"
        ),
        {"h": token_sha256, "u": user_id, "sub": sub, "email": email,
         "verified": email_verified, "name": name, "age": max_age_seconds},
    )


def live(session: Session, token_sha256: str) -> WebSession | None:
    return session.scalars(
        select(WebSession).where(
            WebSession.token_sha256 == token_sha256,
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > text("now()"),
        )
    ).one_or_none()


def revoke(session: Session, token_sha256: str) -> int:
    return _revoke(session, WebSession.token_sha256 == token_sha256)


def revoke_user(session: Session, user_id: str) -> int:
    return _revoke(session, WebSession.user_id == user_id)


def _revoke(session: Session, which: ColumnElement[bool]) -> int:
    """Revoke the live sessions ``which`` selects; returns how many."""
    result = session.execute(
        update(WebSession)
        .where(which, WebSession.revoked_at.is_(None))
        .values(revoked_at=text("now()"))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_ended_before(session: Session, before: datetime) -> int:
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at < before) | (WebSession.revoked_at < before)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
