"""SQL of users (sign-in, profile, listings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, text, tuple_
from sqlalchemy.orm import Session

from hopsplane.accounts.rules import LOGIN_TOUCH_SECONDS
from hopsplane.db.models import User

# Race-safe: two first requests of one new subject both insert, one wins, the other reads.
# No conflict target: a clash on the email (another identity with that address) also lands
# here and is told apart by the read that follows.
_INSERT_OWNER = text(
    """
    INSERT INTO users (id, email, name, last_login_at)
    VALUES (:id, :email, :name, now())
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)

_TOUCH = text(
    """
    UPDATE users SET last_login_at = now()
    WHERE id = :id
      AND (last_login_at IS NULL OR last_login_at < now() - make_interval(secs => :every))
    """
)


def insert_owner(session: Session, user_id: str, email: str, name: str | None) -> bool:
    """True when this call created the user."""
    row = session.execute(_INSERT_OWNER, {"id": user_id, "email": email, "name": name})
    return row.first() is not None


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def get_by_email(session: Session, email: str) -> User | None:
    """Emails are unique case-insensitively in practice (stored lower-cased at sign-in);
    the lookup uses the lower(email) index."""
    return session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower()).limit(1)
    ).first()


# The sign-in of a known subject in one round trip (it runs on every request): the
# last_login_at refresh (at most once a minute) and the read of who the user is. The read
# sees the row as it was before the UPDATE, which changes none of the columns it reads.
_SIGN_IN = text(
    """
    WITH touched AS (
      UPDATE users SET last_login_at = now()
      WHERE id = :id
        AND (last_login_at IS NULL OR last_login_at < now() - make_interval(secs => :every))
    )
    SELECT id, email, account_owner_id, is_platform_admin FROM users WHERE id = :id
    """
)


def touch_and_get(session: Session, user_id: str) -> Row[Any] | None:
    """(id, email, account_owner_id, is_platform_admin) of a known user, whose
    last_login_at is refreshed when older than a minute; None for an unknown one."""
    return session.execute(
        _SIGN_IN, {"id": user_id, "every": LOGIN_TOUCH_SECONDS}
    ).one_or_none()
def in_account(session: Session, account_id: str, user_ids: list[str]) -> list[User]:
    """Those of ``user_ids`` who are the account's owner or one of its members now."""
    if not user_ids:
        return []
    return list(session.scalars(select(User).where(
        User.id.in_(user_ids),
        func.coalesce(User.account_owner_id, User.id) == account_id,
    )))


def touch_login(session: Session, user_id: str) -> bool:
    result = session.execute(_TOUCH, {"id": user_id, "every": LOGIN_TOUCH_SECONDS})
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_users(
    session: Session, *, limit: int, after: tuple[datetime, str] | None
) -> list[User]:
    """All users, newest first, keyset on (created_at, id)."""
    stmt = select(User)
    if after is not None:
        stmt = stmt.where(tuple_(User.created_at, User.id) < tuple_(*after))
    return list(session.scalars(stmt.order_by(User.created_at.desc(), User.id.desc()).limit(limit)))


def platform_admins(session: Session) -> list[User]:
    """Every platform admin, by email."""
    return list(session.scalars(
        select(User).where(User.is_platform_admin.is_(True)).order_by(User.email, User.id)
    ))


def ids_in_order(session: Session, account_id: str, limit: int) -> list[str]:
    """The account's owner, then its members by when their user was made (so a newcomer
    comes last and nobody's place moves when someone joins)."""
    return list(session.scalars(
        select(User.id).where((User.id == account_id) | (User.account_owner_id == account_id))
        .order_by(User.account_owner_id.is_not(None), User.created_at, User.id).limit(limit)))
