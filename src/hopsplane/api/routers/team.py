"""/v1/team (owners manage invites and members) and /v1/invites/accept (the invitee)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response

from hopsplane.api.errors import error_responses
from hopsplane.apikeys.rules import Scope
from hopsplane.errors import Invalid
from hopsplane.fields import CursorText, Identifier
from hopsplane.http.apikeys import key_scope
from hopsplane.http.deps import MemberDep, SessionDep, TeamDep
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, time_cursor, time_page
from hopsplane.http.state import account_hooks, invite_context, limit_accepts, limit_invites
from hopsplane.teams import service as teams
from hopsplane.teams.schemas import (
    AcceptIn,
    InviteIn,
    InviteOut,
    MemberOut,
    Membership,
    ProjectIn,
    ResendIn,
)

router = APIRouter(prefix="/v1", tags=["teams"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[CursorText | None, Query()]
MemberId = Annotated[Identifier, Path(description="The member's user id.")]


@router.get(
    "/team/invites", response_model=Page[InviteOut],
    responses=error_responses(401, 403, 422, 503), openapi_extra=key_scope(Scope.TEAM_READ))
def list_invites(
    principal: TeamDep, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[InviteOut]:
    """Pending invites of your account (expired ones included, with status `expired`)."""
    after = None
    parsed = time_cursor(cursor)
    if parsed is not None:
        try:
            after = (parsed[0], uuid.UUID(parsed[1]))
        except ValueError as exc:
            raise Invalid("cursor is not one this API returned") from exc
    return time_page(teams.list_pending(session, principal.account_id, limit=limit, after=after),
                     limit)


@router.post(
    "/team/invites", response_model=InviteOut, status_code=201,
    responses={
        200: {"model": InviteOut, "description": "The pending invite for that email."},
        **error_responses(400, 401, 403, 409, 422, 429, 503),
    },
)
def create_invite(
    request: Request, response: Response, principal: TeamDep, session: SessionDep,
    body: InviteIn,
) -> InviteOut:
    """Invite an email to your team (201). The link goes by email and is never logged;
    only in development without SMTP does the answer carry it (`accept_link`) for you to
    pass on; elsewhere without SMTP invites are refused (503). Idempotent: while an invite
    for that email is pending, the same request answers 200 with it and sends nothing."""
    limit_invites(request, principal)
    issued = teams.create_invite(
        session, invite_context(request), principal.account_id, body.email, body.expires_in_days
    )
    if not issued.created:
        response.status_code = 200
    return issued.invite


@router.post(
    "/team/invites/{invite_id}/resend", response_model=InviteOut,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
def resend_invite(
    request: Request, principal: TeamDep, session: SessionDep, invite_id: uuid.UUID,
    body: Annotated[ResendIn | None, Body()] = None,
) -> InviteOut:
    """Send the invite again with a new token (the old link stops working) and a new expiry."""
    limit_invites(request, principal)
    days = body.expires_in_days if body else None
    ctx = invite_context(request)
    return teams.resend_invite(session, ctx, principal.account_id, invite_id, days).invite


@router.delete(
    "/team/invites/{invite_id}", response_model=InviteOut,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def revoke_invite(principal: TeamDep, session: SessionDep, invite_id: uuid.UUID) -> InviteOut:
    """Revoke a pending invite: its link stops working (revoking twice is harmless)."""
    return teams.revoke_invite(session, principal.account_id, invite_id)


@router.get(
    "/team/members", response_model=Page[MemberOut],
    responses=error_responses(401, 403, 422, 503), openapi_extra=key_scope(Scope.TEAM_READ))
def list_members(
    principal: TeamDep, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[MemberOut]:
    """The members of your account, newest first."""
    rows = teams.list_members(session, principal.account_id, limit=limit, after=time_cursor(cursor))
    return time_page(rows, limit)


@router.delete(
    "/team/members/{member_id}", response_model=MemberOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def remove_member(
    request: Request, principal: TeamDep, session: SessionDep, member_id: MemberId
) -> MemberOut:
    """Remove a member: they become the owner of a new, empty account."""
    return teams.remove_member(session, account_hooks(request), principal.account_id, member_id)


@router.put(
    "/team/members/{member_id}/project", response_model=MemberOut,
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
def assign_project(
    request: Request, principal: TeamDep, session: SessionDep, member_id: MemberId,
    body: ProjectIn
) -> MemberOut:
    """Assign a Hopsworks project to a member."""
    return teams.assign_project(
        session, account_hooks(request), principal.account_id, member_id, body.hopsworks_project_id
    )


@router.post(
    "/invites/accept", response_model=Membership,
    responses=error_responses(400, 401, 403, 404, 409, 410, 422, 429, 503),
)
def accept_invite(
    request: Request, principal: MemberDep, session: SessionDep, body: AcceptIn
) -> Membership:
    """Join the account that invited you. Your verified email must be the invited one.
    Unknown token: 404; used, revoked or expired: 410."""
    limit_accepts(request, principal)
    return teams.accept_invite(
        session, account_hooks(request), principal.user_id, principal.email,
        principal.email_verified, body.token,
    )
