"""Who may manage an organization and see its usage, for the API and the console alike."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from hopsplane.errors import Forbidden
from hopsplane.http.deps import Principal, SessionDep, current_principal
from hopsplane.organizations import service as organizations
from hopsplane.organizations.rules import OrgRole


def org_usage_members(session: Session, principal: Principal,
                      org_id: uuid.UUID) -> frozenset[str]:
    """The people whose usage makes up the organization's, when the caller may see it: the
    account owner and the organization's admins (anyone else of the account who can see the
    organization gets 403; an organization of another account is 404)."""
    organizations.get(session, principal.account_id, principal.user_id, principal.is_owner,
                      org_id)
    if not principal.is_owner and organizations.role_in(
            session, principal.account_id, principal.user_id, org_id) is not OrgRole.ADMIN:
        raise Forbidden("only the account owner or an admin of this organization sees its usage")
    return frozenset(organizations.member_ids(session, org_id))


def require_org_manager(
    principal: Annotated[Principal, Depends(current_principal)], session: SessionDep,
    org_id: uuid.UUID,
) -> Principal:
    """The guard of an organization's management and usage: the account owner or an admin
    of that organization (404 for an organization the caller cannot see, else 403)."""
    org_usage_members(session, principal, org_id)
    return principal


OrgManagerDep = Annotated[Principal, Depends(require_org_manager)]
