"""Use cases of browser sessions. Functions take the session first and never commit.

A session is a random token: the browser holds it (in a signed cookie), the database holds
its SHA-256 with who signed in and until when. Only a live row (not revoked, not expired)
signs anyone in, so revoking the row ends the session wherever the cookie was copied to.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.sessions import repository as repo
from hopsplane.sessions.schemas import SessionIdentity

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session, user_id: str, identity: SessionIdentity, max_age_seconds: int
) -> str:
    """A new session for ``user_id``; returns its token (the only copy)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    repo.insert(
        session, _digest(token), user_id, identity.sub, identity.email,
        identity.email_verified, identity.name, max_age_seconds,
    )
    return token


def identify(session: Session, token: str) -> SessionIdentity | None:
    """Who a token signs in, or None when it is unknown, revoked or expired."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = repo.live(session, _digest(token))
    if row is None:
        return None
    return SessionIdentity(row.sub, row.email, row.email_verified, row.name)


def end(session: Session, token: str) -> bool:
    """Sign-out: revoke this one session. False when it was not live."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    return repo.revoke(session, _digest(token)) > 0


def end_all(session: Session, user_id: str) -> int:
    """Sign out everywhere: revoke every live session of a user; returns how many."""
    revoked = repo.revoke_user(session, user_id)
    audit.record(session, "sessions.revoked_everywhere", account_id=None,  # platform-wide
                 target=f"user:{user_id}", after={"revoked": revoked})
    return revoked


def prune(session: Session, keep_days: int = 7) -> int:
    """Delete sessions that ended (expired or revoked) more than ``keep_days`` ago."""
    return repo.delete_ended_before(session, datetime.now(UTC) - timedelta(days=keep_days))
