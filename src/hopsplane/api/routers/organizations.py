"""/v1/organizations: groups of an account's people with a delegated role (the plan's
"Future: Organizations"). The owner creates them; the owner and an organization's admins
add people and see its usage; anyone of the account sees the organizations they are in."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from hopsplane.api.errors import error_responses
from hopsplane.apikeys.rules import Scope
from hopsplane.billing import service as billing
from hopsplane.billing.schemas import UsageReport
from hopsplane.http import exports
from hopsplane.http.apikeys import key_scope
from hopsplane.http.deps import MemberDep, OwnerDep, SessionDep
from hopsplane.http.organizations import OrgManagerDep, org_usage_members
from hopsplane.organizations import service as organizations
from hopsplane.organizations.schemas import (
    OrganizationCreate,
    OrganizationOut,
    OrgMemberIn,
    OrgMemberOut,
)

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

From = Annotated[date, Query(alias="from", description="First UTC day.")]
To = Annotated[date, Query(alias="to", description="Last UTC day (inclusive).")]


@router.get("", response_model=list[OrganizationOut], responses=error_responses(401, 403),
            openapi_extra=key_scope(Scope.TEAM_READ))
def list_organizations(principal: MemberDep, session: SessionDep) -> list[OrganizationOut]:
    """The owner: every organization of the account; anyone else: those they are in."""
    return organizations.list_for(session, principal.account_id, principal.user_id,
                                  principal.is_owner)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrganizationOut,
             responses=error_responses(401, 403, 409, 422))
def create_organization(
    principal: OwnerDep, session: SessionDep, body: OrganizationCreate
) -> OrganizationOut:
    """A new organization in your account (names are unique per account, any case)."""
    return organizations.create(session, principal.account_id, body.name)


@router.get("/{org_id}/members", response_model=list[OrgMemberOut],
            responses=error_responses(401, 403, 404, 422),
            openapi_extra=key_scope(Scope.TEAM_READ))
def list_org_members(
    principal: MemberDep, session: SessionDep, org_id: uuid.UUID
) -> list[OrgMemberOut]:
    """Its people and their roles (an organization you cannot see: 404)."""
    return organizations.members(session, principal.account_id, principal.user_id,
                                 principal.is_owner, org_id)


@router.put("/{org_id}/members", response_model=OrgMemberOut,
            responses=error_responses(401, 403, 404, 422))
def put_org_member(
    principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID, body: OrgMemberIn
) -> OrgMemberOut:
    """Add a person of your account by email with a role, or change their role. The owner
    and the organization's admins only."""
    return organizations.put_member(session, principal.account_id, principal.user_id,
                                    principal.is_owner, org_id, body.email, body.role.value)


@router.delete("/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(401, 403, 404, 422))
def remove_org_member(
    principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID, user_id: str
) -> Response:
    """Take a person out of the organization (they stay in the team)."""
    organizations.remove_member(session, principal.account_id, principal.user_id,
                                principal.is_owner, org_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{org_id}/usage", response_model=UsageReport,
            responses=error_responses(401, 403, 404, 422))
def org_usage(
    principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID, date_from: From,
    date_to: To,
) -> UsageReport:
    """Daily usage of the organization's people together (scope `organization`). The owner
    and the organization's admins only."""
    ids = org_usage_members(session, principal, org_id)
    return billing.usage_report(session, principal.account_id, date_from, date_to, members=ids)


@router.get("/{org_id}/usage.csv", response_class=StreamingResponse,
            responses={200: {"description": "CSV, one snapshot.", "content": {"text/csv": {}}},
                       **error_responses(401, 403, 404, 422)})
def org_usage_csv(
    request: Request, principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID,
    date_from: From, date_to: To,
) -> Response:
    """The days of `GET /v1/organizations/{id}/usage` as CSV, one row per day and member
    (the columns of `GET /v1/account/usage.csv`), one snapshot."""
    ids = org_usage_members(session, principal, org_id)
    exports.check_usage_range(session, principal.account_id, date_from, date_to)
    return exports.usage_csv(request, principal.account_id, date_from, date_to, ids,
                             name="organization-usage")
