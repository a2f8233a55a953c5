"""SQL of team invites and members. The only module of teams that reads or writes tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.orm import Session

from hopsplane.db.models import TeamInvite, User


def now(session: Session) -> datetime:
    value: datetime = session.execute(text("SELECT now()")).scalar_one()
    return value


def revoke_expired_live(session: Session, account_id: str, email: str) -> int:
    """Make room under the one-live-invite index: a live invite past its expiry is revoked."""
    result = session.execute(
        update(TeamInvite)
        .where(
            TeamInvite.account_owner_id == account_id,
            func.lower(TeamInvite.email) == email.lower(),
            TeamInvite.accepted_at.is_(None),
            TeamInvite.revoked_at.is_(None),
            TeamInvite.expires_at <= func.now(),
        )
        .values(revoked_at=func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def live_invite(session: Session, account_id: str, email: str) -> TeamInvite | None:
    return session.scalars(
        select(TeamInvite).where(
            TeamInvite.account_owner_id == account_id,
            func.lower(TeamInvite.email) == email.lower(),
            TeamInvite.accepted_at.is_(None),
            TeamInvite.revoked_at.is_(None),
        )
    ).one_or_none()


def insert_invite(
    session: Session, account_id: str, email: str, token_hash: str, expires_at: datetime
) -> TeamInvite:
    invite = TeamInvite(
        account_owner_id=account_id, email=email, token_hash=token_hash, expires_at=expires_at
    )
    session.add(invite)
    session.flush()
    session.refresh(invite)
    return invite


def get_invite(session: Session, account_id: str, invite_id: uuid.UUID) -> TeamInvite | None:
    return session.scalars(
        select(TeamInvite)
        .where(TeamInvite.id == invite_id, TeamInvite.account_owner_id == account_id)
        .with_for_update()
    ).one_or_none()


def invite_by_hash(session: Session, token_hash: str) -> TeamInvite | None:
    return session.scalars(
        select(TeamInvite).where(TeamInvite.token_hash == token_hash).with_for_update()
    ).one_or_none()


def list_pending(
    session: Session, account_id: str, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[TeamInvite]:
    """Live invites (not accepted, not revoked; expired ones included, marked by status)."""
    stmt = select(TeamInvite).where(
        TeamInvite.account_owner_id == account_id,
        TeamInvite.accepted_at.is_(None),
        TeamInvite.revoked_at.is_(None),
    )
    if after is not None:
        stmt = stmt.where(tuple_(TeamInvite.created_at, TeamInvite.id) < tuple_(*after))
    order = (TeamInvite.created_at.desc(), TeamInvite.id.desc())
    return list(session.scalars(stmt.order_by(*order).limit(limit)))


def member_exists(session: Session, account_id: str, email: str) -> bool:
    return session.execute(
        select(User.id).where(
            User.account_owner_id == account_id, func.lower(User.email) == email.lower()
        )
    ).first() is not None


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def lock_user(session: Session, user_id: str) -> User | None:
    return session.scalars(select(User).where(User.id == user_id).with_for_update()).one_or_none()


def member_count(session: Session, account_id: str) -> int:
    value = session.execute(
        text("SELECT count(*) FROM users WHERE account_owner_id = :id"), {"id": account_id}
    ).scalar_one()
    return int(value)


def delete_sent_invites(session: Session, account_id: str) -> None:
    """The invites an owner sent reference them as an owner and would stop the database
    from turning them into a member."""
    session.execute(delete(TeamInvite).where(TeamInvite.account_owner_id == account_id))


def make_member(session: Session, user: User, account_id: str) -> None:
    user.account_owner_id = account_id
    session.flush()
    session.refresh(user)


def mark_accepted(session: Session, invite: TeamInvite, user_id: str) -> None:
    invite.accepted_at = now(session)
    invite.accepted_by = user_id
    session.flush()


def list_members(
    session: Session, account_id: str, *, limit: int, after: tuple[datetime, str] | None
) -> list[User]:
    stmt = select(User).where(User.account_owner_id == account_id)
    if after is not None:
        stmt = stmt.where(tuple_(User.created_at, User.id) < tuple_(*after))
    return list(session.scalars(stmt.order_by(User.created_at.desc(), User.id.desc()).limit(limit)))


def get_member(session: Session, account_id: str, member_id: str) -> User | None:
    return session.scalars(
        select(User)
        .where(User.id == member_id, User.account_owner_id == account_id)
        .with_for_update()
    ).one_or_none()


def release_member(session: Session, member: User) -> None:
    """The member becomes an owner of an empty account of their own."""
    member.account_owner_id = None
    member.hopsworks_project_id = None
    session.flush()
    session.refresh(member)


def set_project(session: Session, member: User, project_id: int) -> None:
    member.hopsworks_project_id = project_id
    session.flush()
