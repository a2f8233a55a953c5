"""SQL of organizations and organization_members. Every read of a membership joins the
person's row of ``hopsplane.account_members`` (the accounts domain's published view,
revision 0020) on the organization's account, so someone who left the team holds no role
any more."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.errors import Conflict

_IN_ACCOUNT = "u.account_id = o.owner_id"


def create(session: Session, account_id: str, name: str) -> uuid.UUID:
    try:
        with session.begin_nested():
            org_id: uuid.UUID = session.execute(text(
                "INSERT INTO organizations (name, owner_id) VALUES (:n, :o) RETURNING id"
            ), {"n": name, "o": account_id}).scalar_one()
            return org_id
    except IntegrityError as exc:
        raise Conflict(f"the account already has an organization named {name!r}") from exc


def of_account(session: Session, account_id: str, viewer: str | None) -> list[Any]:
    """The account's organizations with their member count; ``viewer`` set: only those the
    viewer belongs to, with their role."""
    return list(session.execute(text(f"""
        SELECT o.id, o.name, o.created_at,
               (SELECT count(*) FROM organization_members m
                  JOIN hopsplane.account_members u ON u.user_id = m.user_id
                 WHERE m.organization_id = o.id AND {_IN_ACCOUNT}) AS members,
               mine.role AS my_role
          FROM organizations o
          LEFT JOIN organization_members mine
            ON mine.organization_id = o.id AND mine.user_id = :viewer
         WHERE o.owner_id = :owner AND (CAST(:viewer AS text) IS NULL OR mine.role IS NOT NULL)
         ORDER BY lower(o.name), o.id
         LIMIT 500
    """), {"owner": account_id, "viewer": viewer}))


def get(session: Session, account_id: str, org_id: uuid.UUID) -> Any:
    return session.execute(text(
        "SELECT id, name, owner_id, created_at FROM organizations WHERE id = :i AND owner_id = :o"
    ), {"i": org_id, "o": account_id}).first()


def members(session: Session, org_id: uuid.UUID) -> list[Any]:
    return list(session.execute(text(f"""
        SELECT u.user_id, u.email, u.name, m.role, m.added_at
          FROM organization_members m
          JOIN organizations o ON o.id = m.organization_id
          JOIN hopsplane.account_members u ON u.user_id = m.user_id
         WHERE m.organization_id = :i AND {_IN_ACCOUNT}
         ORDER BY lower(u.email), u.user_id
    """), {"i": org_id}))


def roles_of(session: Session, user_id: str, account_id: str) -> list[tuple[uuid.UUID, str]]:
    """(organization, role) of a person in the organizations of their account."""
    return [(r.organization_id, r.role) for r in session.execute(text(f"""
        SELECT m.organization_id, m.role
          FROM organization_members m
          JOIN organizations o ON o.id = m.organization_id
          JOIN hopsplane.account_members u ON u.user_id = m.user_id
         WHERE m.user_id = :u AND o.owner_id = :o AND {_IN_ACCOUNT}
    """), {"u": user_id, "o": account_id})]


def put_member(session: Session, org_id: uuid.UUID, user_id: str, role: str) -> None:
    session.execute(text("""
        INSERT INTO organization_members (organization_id, user_id, role)
        VALUES (:i, :u, :r)
        ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role
    """), {"i": org_id, "u": user_id, "r": role})


def remove_member(session: Session, org_id: uuid.UUID, user_id: str) -> bool:
    result = session.execute(text(
        "DELETE FROM organization_members WHERE organization_id = :i AND user_id = :u"
    ), {"i": org_id, "u": user_id})
    return bool(result.rowcount)  # type: ignore[attr-defined]
