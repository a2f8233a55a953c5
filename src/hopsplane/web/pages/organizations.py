"""Organizations of an account: the list, one organization's people and roles, and for
the owner and its admins its usage (chart and CSV) and the form that adds people."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing import service as billing
from hopsplane.errors import AppError, Invalid
from hopsplane.http import exports
from hopsplane.http.deps import (
    MemberDep,
    OwnerDep,
    Principal,
    SessionDep,
)
from hopsplane.http.forms import FormDep
from hopsplane.http.organizations import OrgManagerDep, org_usage_members
from hopsplane.organizations import service as organizations
from hopsplane.organizations.rules import OrgRole
from hopsplane.web import charts
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import (
    attempt,
    date_range,
    render,
)

router = APIRouter(include_in_schema=False, tags=["console"])

ORG_NOTICES = {
    "saved": "Saved: the person has that role in this organization now.",
    "removed": "Removed from the organization: they stay in your team.",
}
PUT_WORDS = {
    "not_found": "Nobody of your team has that email address: invite them on the Team page "
                 "first, then add them here.",
}
REMOVE_WORDS = {"not_found": "That person is not in this organization (any more)."}


def _orgs(request: Request, principal: Principal, session: Session, status_code: int = 200,
          error: str | None = None, name: str = "") -> HTMLResponse:
    rows = organizations.list_for(session, principal.account_id, principal.user_id,
                                  principal.is_owner)
    return render(request, "organizations.html", principal, status_code, error=error,
                  orgs=rows, name=name)


@router.get("/console/organizations")
def orgs_page(request: Request, principal: MemberDep, session: SessionDep) -> HTMLResponse:
    """The account's organizations (a person who is not the owner: those they are in)."""
    return _orgs(request, principal, session)


@router.post("/console/organizations")
def org_create(
    request: Request, principal: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    name = form.get("name", "")
    try:
        if not name.strip():
            raise Invalid("Type a name for the organization, for example Data science.")
        org = attempt(session, lambda: organizations.create(session, principal.account_id, name))
    except AppError as exc:
        return _orgs(request, principal, session, exc.status, error=message_for(exc), name=name)
    return RedirectResponse(f"/console/organizations/{org.id}", status_code=303)


def _org(request: Request, principal: Principal, session: Session, org_id: uuid.UUID,
         status_code: int = 200, error: str | None = None,
         form: dict[str, str] | None = None) -> HTMLResponse:
    org = organizations.get(session, principal.account_id, principal.user_id,
                            principal.is_owner, org_id)
    people = organizations.members(session, principal.account_id, principal.user_id,
                                   principal.is_owner, org_id)
    my_role = None if principal.is_owner else organizations.role_in(
        session, principal.account_id, principal.user_id, org_id)
    manages = principal.is_owner or my_role == "admin"
    report = chart = narrow = None
    first, last = date_range("", "")
    if manages:
        report = billing.usage_report(session, principal.account_id, first, last,
                                      members=frozenset(p.user_id for p in people))
        # named and coloured as on the account's usage page: one person, one colour
        names = accounts.people_of(session, principal.account_id,
                                   [u for d in report.days for u in d.user_breakdown])
        chart, narrow = charts.pair(report.days, names,
                                    request.app.state.settings.stripe_currency, first, last,
                                    accounts.people_order(session, principal.account_id))
    return render(request, "organization.html", principal, status_code, error=error, org=org,
                  people=people, manages=manages, report=report, chart=chart, narrow=narrow,
                  form=form or {}, roles=[r.value for r in OrgRole],
                  notice=ORG_NOTICES.get(request.query_params.get("notice", "")))


@router.get("/console/organizations/{org_id}")
def org_page(request: Request, principal: MemberDep, session: SessionDep,
             org_id: uuid.UUID) -> HTMLResponse:
    """An organization: its people and roles; for the owner and its admins, its usage of
    the last 30 days (chart and CSV) and the form that adds people."""
    return _org(request, principal, session, org_id)


@router.post("/console/organizations/{org_id}/members")
def org_put_member(
    request: Request, principal: OrgManagerDep, session: SessionDep, form: FormDep,
    org_id: uuid.UUID,
) -> Response:
    try:
        attempt(session, lambda: organizations.put_member(
            session, principal.account_id, principal.user_id, principal.is_owner, org_id,
            form.get("email", ""), form.get("role", "")))
    except AppError as exc:
        return _org(request, principal, session, org_id, exc.status,
                    error=message_for(exc, PUT_WORDS), form=form)
    return RedirectResponse(f"/console/organizations/{org_id}?notice=saved", status_code=303)


@router.post("/console/organizations/{org_id}/members/{user_id}/remove")
def org_remove_member(
    request: Request, principal: OrgManagerDep, session: SessionDep, form: FormDep,
    org_id: uuid.UUID, user_id: Annotated[str, Path(min_length=1, max_length=255)],
) -> Response:
    """Take a person out of the organization (they stay in the team): the console's form of
    ``DELETE /v1/organizations/{id}/members/{user_id}``, with the same guard."""
    try:
        attempt(session, lambda: organizations.remove_member(
            session, principal.account_id, principal.user_id, principal.is_owner, org_id,
            user_id))
    except AppError as exc:
        return _org(request, principal, session, org_id, exc.status,
                    error=message_for(exc, REMOVE_WORDS))
    return RedirectResponse(f"/console/organizations/{org_id}?notice=removed", status_code=303)


@router.get("/console/organizations/{org_id}/usage.csv")
def org_usage_export(
    request: Request, principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID,
    date_from: Annotated[str, Query(alias="from", max_length=32)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> Response:
    """The organization's usage as CSV: the rows of ``GET /v1/organizations/{id}/usage.csv``."""
    first, last = date_range(date_from, date_to)
    ids = org_usage_members(session, principal, org_id)
    exports.check_usage_range(session, principal.account_id, first, last)
    return exports.usage_csv(request, principal.account_id, first, last, ids,
                             name="organization-usage")
