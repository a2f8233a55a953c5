"""Organizations of an account: the owner creates them and puts the account's people in
them with a role; an organization's ``admin`` manages its people too. Roles delegate what
:mod:`hopsplane.organizations.rules` says; billing stays with the owner's account."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.audit import service as audit
from hopsplane.errors import Forbidden, Invalid, NotFound
from hopsplane.organizations import repository as repo
from hopsplane.organizations.rules import (
    Capability,
    OrgRole,
    capabilities,
    clean_name,
    parse_role,
)
from hopsplane.organizations.schemas import OrganizationOut, OrgMemberOut


def create(session: Session, account_id: str, name: str) -> OrganizationOut:
    """A new organization in the owner's account (``account_id``: the account)."""
    org_id = repo.create(session, account_id, clean_name(name))
    out = _out(session, account_id, None, org_id)
    audit.record(session, "organizations.created", account_id=account_id,
                 target=f"organization:{org_id}", after={"name": out.name})
    return out


def list_for(session: Session, account_id: str, user_id: str,
             is_owner: bool) -> list[OrganizationOut]:
    """The owner sees every organization of the account; anyone else those they are in."""
    rows = repo.of_account(session, account_id, None if is_owner else user_id)
    return [OrganizationOut(id=r.id, name=r.name, created_at=r.created_at, members=r.members,
                            my_role=OrgRole(r.my_role) if r.my_role else None) for r in rows]


def _out(session: Session, account_id: str, viewer: str | None,
         org_id: uuid.UUID) -> OrganizationOut:
    for org in list_for(session, account_id, viewer or account_id, viewer is None):
        if org.id == org_id:
            return org
    raise NotFound("no such organization")


def get(session: Session, account_id: str, user_id: str, is_owner: bool,
        org_id: uuid.UUID) -> OrganizationOut:
    """An organization the caller may see (the owner: any of the account's; others: theirs);
    any other id is 404, as if it did not exist."""
    return _out(session, account_id, None if is_owner else user_id, org_id)


def role_in(session: Session, account_id: str, user_id: str, org_id: uuid.UUID) -> OrgRole | None:
    return next((OrgRole(r) for o, r in repo.roles_of(session, user_id, account_id)
                 if o == org_id), None)


def capabilities_of(session: Session, account_id: str, user_id: str) -> frozenset[Capability]:
    """Everything a person who is not the owner holds through their roles (one query)."""
    return capabilities({OrgRole(r) for _, r in repo.roles_of(session, user_id, account_id)})


def can(session: Session, account_id: str, user_id: str, capability: Capability) -> bool:
    """Whether a person who is not the owner holds ``capability`` through a role."""
    return capability in capabilities_of(session, account_id, user_id)


def members(session: Session, account_id: str, user_id: str, is_owner: bool,
            org_id: uuid.UUID) -> list[OrgMemberOut]:
    get(session, account_id, user_id, is_owner, org_id)
    return [OrgMemberOut(user_id=r.user_id, email=r.email, name=r.name, role=OrgRole(r.role),
                         added_at=r.added_at) for r in repo.members(session, org_id)]


def member_ids(session: Session, org_id: uuid.UUID) -> list[str]:
    return [r.user_id for r in repo.members(session, org_id)]


def require_manager(session: Session, account_id: str, user_id: str, is_owner: bool,
                     org_id: uuid.UUID) -> None:
    get(session, account_id, user_id, is_owner, org_id)
    if not is_owner and role_in(session, account_id, user_id, org_id) is not OrgRole.ADMIN:
        raise Forbidden("only the account owner or an admin of this organization may do this")


def put_member(session: Session, account_id: str, user_id: str, is_owner: bool,
               org_id: uuid.UUID, email: str, role: str) -> OrgMemberOut:
    """Add a person of the account (by email) with a role, or change their role."""
    require_manager(session, account_id, user_id, is_owner, org_id)
    wanted = parse_role(role)
    if not email.strip():
        raise Invalid("type the email of a person of your account")
    try:
        person = accounts.find_user(session, email)
    except NotFound:
        person = None
    if person is None or (person.account_owner_id or person.id) != account_id:
        raise NotFound("nobody of your account has that email: invite them to the team first")
    before = role_in(session, account_id, person.id, org_id)
    repo.put_member(session, org_id, person.id, wanted.value)
    audit.record(session, "organizations.role_set", account_id=account_id,
                 target=f"organization:{org_id}:user:{person.id}",
                 before=None if before is None else {"role": before},
                 after={"role": wanted, "email": person.email})
    return next(m for m in members(session, account_id, user_id, is_owner, org_id)
                if m.user_id == person.id)


def remove_member(session: Session, account_id: str, user_id: str, is_owner: bool,
                  org_id: uuid.UUID, member_id: str) -> None:
    require_manager(session, account_id, user_id, is_owner, org_id)
    before = role_in(session, account_id, member_id, org_id)
    if not repo.remove_member(session, org_id, member_id):
        raise NotFound("that person is not in this organization")
    audit.record(session, "organizations.member_removed", account_id=account_id,
                 target=f"organization:{org_id}:user:{member_id}",
                 before={"role": before}, after=None)
