"""The team: members, pending invites, invite and revoke, member budgets (owner), and the
page an invite email links to."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing import budgets
from hopsplane.clusters import service as clusters
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
from hopsplane.money import MAX_AMOUNT
from hopsplane.teams import service as teams
from hopsplane.teams.schemas import ProjectIn
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import (
    NOTICES,
    attempt,
    check_amount,
    render,
)

router = APIRouter(include_in_schema=False, tags=["console"])

INVITE_WORDS = {
    "conflict": "That person is already in your team.",
    "too_many_requests": "Too many invites this hour: wait a while before sending more.",
}
INVITE_ACTION_WORDS = {
    "not_found": "That invite no longer exists: reload the page.",
    "too_many_requests": "Too many invites this hour: wait a while before sending more.",
}
MEMBER_WORDS = {
    "not_found": "That person is not a member of your team (any more): reload the page.",
}

TEAM_PAGE = 50


def _team(request: Request, principal: Principal, session: Session, status_code: int = 200,
          error: str | None = None, email: str = "",
          accept_link: str | None = None, link_for: str | None = None) -> HTMLResponse:
    """Members (name, email, role, project) and pending invites, each paged newest first
    (``members``/``invites``: the cursor of the page before, as the API's ``next_cursor``).
    ``accept_link``: an invite link to hand over (development without SMTP), for the
    address ``link_for``."""
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
    project_id = owner.hopsworks_project_id
    project = clusters.project_name(session, principal.account_id, project_id)
    return render(
        request, "team.html", principal, status_code, error=error, notice=notice,
        email=email, accept_link=accept_link, link_for=link_for, owner=owner,
        members=members, invites=invites,
        first_members=members_cursor is None, first_invites=invites_cursor is None,
        budgets=member_budgets, account_project_id=project_id, account_project=project,
        shows_links=invite_context(request).show_link,
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
            raise Invalid("Type the email address of the person to invite.")
        limit_invites(request, principal)
        issued = attempt(session, lambda: teams.create_invite(
            session, invite_context(request), principal.account_id, email))
    except AppError as exc:
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, INVITE_WORDS), email=email)
    if issued.invite.accept_link:  # development without SMTP: the owner passes it on
        return _team(request, principal, session, 201, accept_link=issued.invite.accept_link,
                     link_for=issued.invite.email)
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
            _budget_amount(amount, request.app.state.settings.stripe_currency)
            attempt(session, lambda: budgets.set_budget(
                session, principal.account_id, member_id, amount,
                enforce=form.get("enforce") == "on", hooks=hooks, set_by=principal.user_id))
        else:
            attempt(session, lambda: budgets.remove_budget(
                session, principal.account_id, member_id, hooks=hooks))
    except AppError as exc:
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, MEMBER_WORDS))
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
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, INVITE_ACTION_WORDS))
    return RedirectResponse("/console/team?notice=revoked", status_code=303)


@router.post("/console/team/invites/{invite_id}/resend")
def resend(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep,
    invite_id: uuid.UUID,
) -> Response:
    """A new link for a pending invite (the old one stops working), sent by email; without
    SMTP (development) the page shows the new link, named, for the owner to pass on. The
    console's form of ``POST /v1/team/invites/{id}/resend``, same guard and rate limit."""
    try:
        limit_invites(request, principal)
        issued = attempt(session, lambda: teams.resend_invite(
            session, invite_context(request), principal.account_id, invite_id))
    except AppError as exc:
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, INVITE_ACTION_WORDS))
    if issued.invite.accept_link:
        return _team(request, principal, session, 200, accept_link=issued.invite.accept_link,
                     link_for=issued.invite.email)
    return RedirectResponse("/console/team?notice=resent", status_code=303)


@router.post("/console/team/members/{member_id}/remove")
def remove_member(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep,
    member_id: Annotated[str, Path(min_length=1, max_length=255)],
) -> Response:
    """The member leaves the account (they get an empty account of their own): the
    console's form of ``DELETE /v1/team/members/{id}``, same guard."""
    try:
        attempt(session, lambda: teams.remove_member(
            session, account_hooks(request), principal.account_id, member_id))
    except AppError as exc:
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, MEMBER_WORDS))
    return RedirectResponse("/console/team?notice=member-removed", status_code=303)


@router.post("/console/team/members/{member_id}/project")
def assign_project(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep,
    member_id: Annotated[str, Path(min_length=1, max_length=255)],
) -> Response:
    """Give a member a Hopsworks project: the console's form of
    ``PUT /v1/team/members/{id}/project``, same guard and the same validation."""
    try:
        try:
            body = ProjectIn.model_validate(
                {"hopsworks_project_id": form.get("hopsworks_project_id", "").strip()})
        except ValidationError as exc:
            raise Invalid("A Hopsworks project is given by its number, a whole number above "
                          "0 (the number after /p/ in the project's address in Hopsworks, "
                          "for example 119).") from exc
        attempt(session, lambda: teams.assign_project(
            session, account_hooks(request), principal.account_id, member_id,
            body.hopsworks_project_id))
    except AppError as exc:
        return _team(request, principal, session, exc.status,
                     error=message_for(exc, MEMBER_WORDS))
    return RedirectResponse("/console/team?notice=project-assigned", status_code=303)


def _budget_amount(amount: str, currency: str) -> None:
    """The budget form's amount, refused in the form's words before the service sees it."""
    check_amount(amount, "A monthly budget", currency, maximum=MAX_AMOUNT)


@router.get("/console/invites/accept")
def accept_page(
    request: Request, principal: MemberDep, session: SessionDep,
    token: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    """Where the invite email leads (after signing in, if needed): who invited which
    address to whose team, what joining means, and the button that does it."""
    return _accept(request, principal, session, token)


def _accept(request: Request, principal: Principal, session: Session, token: str,
            status_code: int = 200, error: str | None = None) -> HTMLResponse:
    preview = teams.preview_invite(session, token, principal.email) if token else None
    return render(request, "accept.html", principal, status_code, error=error, token=token,
                  invite=preview)


ACCEPT_WORDS = {
    "not_found": "This invite link is not valid: open the link from the invite email again, "
                 "whole.",
}


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
        return _accept(request, principal, session, token[:128], exc.status,
                       error=message_for(exc, ACCEPT_WORDS))
    return RedirectResponse("/console?notice=joined", status_code=303)
