"""The team: members, pending invites, invite and revoke, member budgets (owner), and the
page an invite email links to."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing import budgets
from hopsplane.errors import AppError, Invalid
from hopsplane.http.deps import (
    MemberDep,
    OwnerDep,
    Principal,
    SessionDep,
    TeamDep,
)
from hopsplane.http.forms import FormDep
from hopsplane.http.pagination import time_cursor, time_page
from hopsplane.http.state import (
    account_hooks,
    invite_context,
    limit_accepts,
    limit_invites,
)
from hopsplane.teams import service as teams
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import (
    NOTICES,
    attempt,
    render,
)

router = APIRouter(include_in_schema=False, tags=["console"])

TEAM_PAGE = 50


def _team(request: Request, principal: Principal, session: Session, status_code: int = 200,
          error: str | None = None, email: str = "",
          accept_link: str | None = None) -> HTMLResponse:
    """Members (name, email, role, project) and pending invites, each paged newest first
    (``members``/``invites``: the cursor of the page before, as the API's ``next_cursor``)."""
    notice = NOTICES.get(request.query_params.get("notice", ""))
    members_cursor = request.query_params.get("members") or None
    invites_cursor = request.query_params.get("invites") or None
    members = time_page(teams.list_members(
        session, principal.account_id, limit=TEAM_PAGE, after=time_cursor(members_cursor)),
        TEAM_PAGE)
    invite_after = time_cursor(invites_cursor)
    try:
        after = (invite_after[0], uuid.UUID(invite_after[1])) if invite_after else None
    except ValueError as exc:
        raise Invalid("cursor is not one this page made") from exc
    invites = time_page(teams.list_pending(session, principal.account_id, limit=TEAM_PAGE,
                                           after=after), TEAM_PAGE)
    owner = accounts.get_user(session, principal.account_id)
    member_budgets = {b.member_id: b for b in budgets.budgets_of(session, principal.account_id)} \
        if principal.is_owner else None
    return render(
        request, "team.html", principal, status_code, error=error, notice=notice,
        email=email, accept_link=accept_link, owner=owner, members=members, invites=invites,
        first_members=members_cursor is None, first_invites=invites_cursor is None,
        budgets=member_budgets,
    )


@router.get("/console/team")
def team(
    request: Request, principal: TeamDep, session: SessionDep,
    members: Annotated[str | None, Query(max_length=512)] = None,
    invites: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    return _team(request, principal, session)


@router.post("/console/team/invites")
def invite(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep
) -> Response:
    email = form.get("email", "").strip()
    try:
        if not email:
            raise Invalid("type the email address to invite")
        limit_invites(request, principal)
        issued = attempt(session, lambda: teams.create_invite(
            session, invite_context(request), principal.account_id, email))
    except AppError as exc:
        return _team(request, principal, session, exc.status, error=message_for(exc), email=email)
    if issued.invite.accept_link:  # development without SMTP: the owner passes it on
        return _team(request, principal, session, 201, accept_link=issued.invite.accept_link)
    notice = "invited" if issued.created else "already-invited"
    return RedirectResponse(f"/console/team?notice={notice}", status_code=303)


@router.post("/console/team/budgets")
def set_budget(
    request: Request, principal: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    """A member's monthly budget (an empty amount removes it), evaluated at once."""
    member_id, amount = form.get("member_id", ""), form.get("monthly_budget", "").strip()
    hooks = account_hooks(request)
    try:
        if amount:
            attempt(session, lambda: budgets.set_budget(
                session, principal.account_id, member_id, amount,
                enforce=form.get("enforce") == "on", hooks=hooks, set_by=principal.user_id))
        else:
            attempt(session, lambda: budgets.remove_budget(
                session, principal.account_id, member_id, hooks=hooks))
    except AppError as exc:
        return _team(request, principal, session, exc.status, error=message_for(exc))
    notice = "budget-saved" if amount else "budget-removed"
    return RedirectResponse(f"/console/team?notice={notice}", status_code=303)


@router.post("/console/team/invites/{invite_id}/revoke")
def revoke(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep,
    invite_id: uuid.UUID,
) -> Response:
    try:
        attempt(session, lambda: teams.revoke_invite(session, principal.account_id, invite_id))
    except AppError as exc:
        return _team(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse("/console/team?notice=revoked", status_code=303)


@router.get("/console/invites/accept")
def accept_page(
    request: Request, principal: MemberDep,
    token: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    """Where the invite email leads (after signing in, if needed): what joining means, and
    the button that does it."""
    return render(request, "accept.html", principal, token=token)


@router.post("/console/invites/accept")
def accept(
    request: Request, principal: MemberDep, session: SessionDep, form: FormDep
) -> Response:
    token = form.get("token", "")
    try:
        limit_accepts(request, principal)
        attempt(session, lambda: teams.accept_invite(
            session, account_hooks(request), principal.user_id, principal.email,
            principal.email_verified, token))
    except AppError as exc:
        return render(request, "accept.html", principal, exc.status, error=message_for(exc),
                      token=token)
    return RedirectResponse("/console?notice=joined", status_code=303)
