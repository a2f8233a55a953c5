"""The web console: server-rendered pages for customers, calling the same services as the API.

Who may see what is decided by the API's own guards (MemberDep, OwnerDep), so the route walk
of the API covers these pages too. Sign-in is the browser flow of /auth (session cookie).
Pages: ``/console`` (profile, balance, buy credits), ``/console/ledger`` (owner),
``/console/usage`` (everyone; a member sees their own share), ``/console/team`` (owner:
members, pending invites, invite and revoke), ``/console/invites/accept`` (the page the
invite email links to), and for platform admins ``/console/admin`` (clusters and their
capacity, any account by id or email, grants with a reason).

Forms post ``application/x-www-form-urlencoded`` with a CSRF token bound to the caller's
session (HMAC of the session cookie under the secret key), on top of the cookie's
SameSite=Lax. A refused form re-renders its page with the reason and the 4xx status, and
changes nothing: the service call runs in a savepoint that is rolled back on error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing import budgets
from hopsplane.billing import service as billing
from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import ClusterCreate, ClusterUpdate
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant
from hopsplane.credits.rules import parse_expiry_date
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import is_database_unavailable
from hopsplane.errors import AppError, Invalid
from hopsplane.http import exports
from hopsplane.http.deps import (
    AdminDep,
    BuyDep,
    LedgerDep,
    MemberDep,
    OwnerDep,
    PolicyDep,
    Principal,
    SessionDep,
    TeamDep,
    capabilities,
    sees_account_usage,
)
from hopsplane.http.forms import FormDep, csrf_token
from hopsplane.http.organizations import OrgManagerDep, org_usage_members
from hopsplane.http.pagination import ledger_page, time_cursor, time_page
from hopsplane.http.state import (
    GatewayDep,
    account_hooks,
    invite_context,
    limit_accepts,
    limit_invites,
)
from hopsplane.integrations.stripe import StripeGateway
from hopsplane.organizations import service as organizations
from hopsplane.organizations.rules import OrgRole
from hopsplane.payments import autotopup, receipts
from hopsplane.payments import service as payments
from hopsplane.sessions import service as web_sessions
from hopsplane.teams import service as teams
from hopsplane.web import charts
from hopsplane.web.messages import message_for, title_for
from hopsplane.web.security import CONSOLE_CSS, TEMPLATES

router = APIRouter(include_in_schema=False, tags=["console"])
templates = Jinja2Templates(directory=TEMPLATES)
templates.env.globals["console_css"] = CONSOLE_CSS
templates.env.globals["money"] = charts.money
templates.env.filters["units"] = charts.units
templates.env.filters["cpu_hours"] = charts.cpu_hours

USAGE_DEFAULT_DAYS = 30
RUNWAY_DAYS = 7
TEAM_PAGE = 50
ADMIN_CLUSTERS = 200

NOTICES = {
    "invited": "Invite sent.",
    "already-invited": "That address already has a pending invite; nothing was sent again.",
    "revoked": "Invite revoked: its link no longer works.",
    "joined": "You joined the team: this is now the account you work in.",
    "granted": "Credit granted (a repeated form grants once).",
    "cluster-saved": "Cluster saved; its keys are stored encrypted and never shown again.",
    "signed-out": "Signed out everywhere: every browser session of this user was revoked.",
    "budget-saved": "Budget saved and checked against this month's spend.",
    "budget-removed": "Budget removed: nothing limits that member any more.",
}
"""Messages a redirect may ask for by name (never text from the query string)."""

T = TypeVar("T")


def is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def render(
    request: Request, template: str, principal: Principal | None, status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    currency = request.app.state.settings.stripe_currency
    caps: frozenset[str] = frozenset()
    if principal is not None:
        session: Session | None = getattr(request.state, "session", None)
        if session is not None:
            caps = capabilities_of(request, session, principal)
        else:
            # An error page drawn after the request's transaction ended (its connection is
            # back in the pool): a short read of its own, never two connections at once,
            # and none at all when the request already read them. When the database is
            # what failed, the page (a 503) goes without the delegated links.
            try:
                with request.app.state.database.transaction() as own:
                    caps = capabilities_of(request, own, principal)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
    return templates.TemplateResponse(
        request, template,
        {"principal": principal, "csrf": csrf_token(request), "error": None,
         "currency": currency, "caps": caps, **context},
        status_code=status_code,
    )


def _can_sign_in(request: Request) -> bool:
    identity = getattr(request.app.state, "identity", None)
    return identity is not None and getattr(identity, "web", None) is not None


DEFAULT_RETRY_AFTER_SECONDS = 2


def render_error(request: Request, exc: AppError) -> Response | None:
    """The console's page for an error raised before a page could render (not signed in,
    wrong role, bad query): the same status as the API would give, in HTML. None outside
    the console (the API keeps its JSON errors). Installed as ``app.state.html_errors``.

    A signed-out visitor opening a page (a GET) is sent to sign in and brought back to the
    very address (an invite link keeps its token); a form posted without a session, or a
    server without browser sign-in, gets the 401 page with a sign-in link."""
    if not is_console(request):
        return None
    principal = getattr(request.state, "principal", None)
    if (exc.status == 401 and principal is None and request.method == "GET"
            and _can_sign_in(request)):
        return RedirectResponse(
            "/auth/login?return_to=" + quote(_here(request), safe="/"), status_code=303)
    page = render(request, "error.html", principal, exc.status, title=title_for(exc),
                  message=exc.message, status=exc.status, code=exc.code)
    if exc.status == 503:  # as the API's 503s: when to come back
        retry = exc.context.get("retry_after")
        page.headers["Retry-After"] = str(retry if isinstance(retry, int) else
                                          DEFAULT_RETRY_AFTER_SECONDS)
    return page


def capabilities_of(request: Request, session: Session,
                    principal: Principal) -> frozenset[str]:
    """What the caller may do beyond their own pages (the navigation shows those), read once
    per request in the request's session (:func:`hopsplane.http.deps.capabilities`)."""
    return frozenset(c.value for c in capabilities(request, session, principal))


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def _attempt(session: Session, action: Callable[[], T]) -> T:
    """Run a service call in a savepoint: on a refusal, nothing it wrote stays."""
    with session.begin_nested():
        return action()


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=302)


@router.get("/console/signed-out")
def signed_out(request: Request) -> HTMLResponse:
    """Where signing out ends (after the identity provider's own sign-out): a page that
    says so, with the way back in. Anonymous: it shows nothing of anyone."""
    return render(request, "signed_out.html", None)


@router.get("/console")
def home(request: Request, principal: MemberDep, session: SessionDep) -> HTMLResponse:
    return _home(request, principal, session)


def _home(request: Request, principal: Principal, session: Session, status_code: int = 200,
          error: str | None = None) -> HTMLResponse:
    profile = accounts.profile(session, principal.user_id, email_verified=principal.email_verified)
    caps = capabilities_of(request, session, principal)
    standing = credits.standing(session, principal.account_id) if "ledger" in caps else None
    stopped = clusters.stopped_workloads(session, principal.account_id) \
        if principal.is_owner else []
    stripe: StripeGateway | None = getattr(request.app.state, "stripe", None)
    runway = topups = None
    if standing is not None:
        today = date.today()
        week = billing.usage_report(session, principal.account_id,
                                    today - timedelta(days=RUNWAY_DAYS), today - timedelta(days=1))
        runway = charts.runway(standing.balance, week.total_cost, RUNWAY_DAYS)
        topups = receipts.with_receipts(session, principal.account_id, [
            e for e in credits.history(session, principal.account_id, limit=50)
            if e.stripe_payment_intent_id and e.amount > 0][:5])
    assignment = clusters.assignment(session, principal.account_id)
    cluster = clusters.get_cluster(session, assignment.hopsworks_cluster_id) \
        if assignment is not None else None
    return render(request, "home.html", principal, status_code, error=error, profile=profile,
                  standing=standing, stopped=stopped, runway=runway, topups=topups,
                  cluster=cluster, project=clusters.project_name(
                      session, principal.account_id, profile.hopsworks_project_id),
                  contact=request.app.state.settings.support_email,
                  can_buy="buy" in caps and stripe is not None,
                  topup=stripe.config if stripe is not None else None,
                  notice=NOTICES.get(request.query_params.get("notice", "")))


@router.post("/console/topup")
def topup(
    request: Request, principal: BuyDep, session: SessionDep, gateway: GatewayDep,
    form: FormDep,
) -> Response:
    """Start a Stripe Checkout for the amount typed in, and send the browser there."""
    try:
        out = _attempt(session, lambda: payments.start_topup(
            session, gateway, principal.account_id, form.get("amount", "").strip()))
    except AppError as exc:
        return _home(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse(out.url, status_code=303)


@router.get("/console/ledger")
def ledger(
    request: Request, principal: LedgerDep, session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    page = ledger_page(session, principal.account_id, 50, cursor)
    entries = receipts.with_receipts(session, principal.account_id, page.items)
    return render(request, "ledger.html", principal, page=page, entries=entries,
                  standing=credits.standing(session, principal.account_id))


@router.get("/console/usage")
def usage(
    request: Request, principal: MemberDep, session: SessionDep,
    date_from: Annotated[str, Query(alias="from", max_length=32)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> HTMLResponse:
    """The chart of daily cost by member, the table beneath it, and the range picker. A
    range the page cannot show (not a date, ``to`` before ``from``, too long) is refused on
    the page itself (422), which then shows the last 30 days."""
    member = None if sees_account_usage(request, principal, session) else principal.user_id
    status_code, error = 200, None
    try:
        first, last = _range(date_from, date_to)
        report = billing.usage_report(session, principal.account_id, first, last,
                                      member_id=member)
    except AppError as exc:
        status_code, error = exc.status, message_for(exc)
        first, last = _range("", "")
        report = billing.usage_report(session, principal.account_id, first, last,
                                      member_id=member)
    ids = [uid for d in report.days for uid in d.user_breakdown]
    people = accounts.people_of(session, principal.account_id, ids)
    chart = charts.build(report.days, people, request.app.state.settings.stripe_currency,
                         first, last)
    return render(request, "usage.html", principal, status_code, error=error, report=report,
                  chart=chart, people=people, nobody=charts.NOBODY,
                  typed={"from": date_from, "to": date_to} if error else None)


@router.get("/console/usage.csv")
def usage_export(
    request: Request, principal: MemberDep, session: SessionDep,
    date_from: Annotated[str, Query(alias="from", max_length=32)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> Response:
    """The usage page's range as CSV: the rows of ``GET /v1/account/usage.csv``."""
    first, last = _range(date_from, date_to)
    exports.check_usage_range(session, principal.account_id, first, last)
    member = None if sees_account_usage(request, principal, session) else principal.user_id
    return exports.usage_csv(request, principal.account_id, first, last,
                             frozenset({member}) if member else None)


@router.get("/console/ledger.csv")
def ledger_export(request: Request, principal: LedgerDep, session: SessionDep) -> Response:
    """The whole ledger as CSV: the rows of ``GET /v1/account/ledger.csv``."""
    credits.require_owner(session, principal.account_id)
    return exports.ledger_csv(request, principal.account_id)


def _range(date_from: str, date_to: str) -> tuple[date, date]:
    """The dates typed in the range picker (ISO ``YYYY-MM-DD``); empty: the last 30 days."""
    try:
        last = date.fromisoformat(date_to) if date_to else date.today()
        first = date.fromisoformat(date_from) if date_from else max(
            date.min, last - timedelta(days=min(USAGE_DEFAULT_DAYS - 1, (last - date.min).days)))
    except ValueError as exc:
        raise Invalid("dates are written YYYY-MM-DD, for example 2026-01-31") from exc
    return first, last


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
        issued = _attempt(session, lambda: teams.create_invite(
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
            _attempt(session, lambda: budgets.set_budget(
                session, principal.account_id, member_id, amount,
                enforce=form.get("enforce") == "on", hooks=hooks, set_by=principal.user_id))
        else:
            _attempt(session, lambda: budgets.remove_budget(
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
        _attempt(session, lambda: teams.revoke_invite(session, principal.account_id, invite_id))
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
        _attempt(session, lambda: teams.accept_invite(
            session, account_hooks(request), principal.user_id, principal.email,
            principal.email_verified, token))
    except AppError as exc:
        return render(request, "accept.html", principal, exc.status, error=message_for(exc),
                      token=token)
    return RedirectResponse("/console?notice=joined", status_code=303)


# --- organizations --------------------------------------------------------------------------


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
        org = _attempt(session, lambda: organizations.create(session, principal.account_id, name))
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
    report = chart = None
    first, last = _range("", "")
    if manages:
        report = billing.usage_report(session, principal.account_id, first, last,
                                      members=frozenset(p.user_id for p in people))
        names = {p.user_id: f"{p.name} ({p.email})" if p.name else p.email for p in people}
        chart = charts.build(report.days, names, request.app.state.settings.stripe_currency,
                             first, last)
    return render(request, "organization.html", principal, status_code, error=error, org=org,
                  people=people, manages=manages, report=report, chart=chart,
                  form=form or {}, roles=[r.value for r in OrgRole])


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
        _attempt(session, lambda: organizations.put_member(
            session, principal.account_id, principal.user_id, principal.is_owner, org_id,
            form.get("email", ""), form.get("role", "")))
    except AppError as exc:
        return _org(request, principal, session, org_id, exc.status, error=message_for(exc),
                    form=form)
    return RedirectResponse(f"/console/organizations/{org_id}", status_code=303)


@router.get("/console/organizations/{org_id}/usage.csv")
def org_usage_export(
    request: Request, principal: OrgManagerDep, session: SessionDep, org_id: uuid.UUID,
    date_from: Annotated[str, Query(alias="from", max_length=32)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> Response:
    """The organization's usage as CSV: the rows of ``GET /v1/organizations/{id}/usage.csv``."""
    first, last = _range(date_from, date_to)
    ids = org_usage_members(session, principal, org_id)
    exports.check_usage_range(session, principal.account_id, first, last)
    return exports.usage_csv(request, principal.account_id, first, last, ids,
                             name="organization-usage")


# --- platform admins ----------------------------------------------------------------------


@router.get("/console/admin")
def admin_home(request: Request, admin: AdminDep, session: SessionDep) -> HTMLResponse:
    """Clusters and their capacity, and a lookup of any account."""
    return _admin_home(request, admin, session)


def _admin_home(request: Request, admin: Principal, session: Session, status_code: int = 200,
                error: str | None = None, q: str = "") -> HTMLResponse:
    rows, more = clusters.list_clusters(session, limit=ADMIN_CLUSTERS)
    return render(request, "admin.html", admin, status_code, error=error, q=q,
                  clusters=rows, more=more is not None,
                  notice=NOTICES.get(request.query_params.get("notice", "")))


@router.get("/console/admin/find")
def admin_find(
    request: Request, admin: AdminDep, session: SessionDep,
    q: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    try:
        user = accounts.find_user(session, q)
    except AppError as exc:
        return _admin_home(request, admin, session, exc.status, error=message_for(exc), q=q)
    account = user.account_owner_id or user.id
    return RedirectResponse(f"/console/admin/accounts/{quote(account, safe='')}",
                            status_code=303)


def _admin_account(
    request: Request, admin: Principal, session: Session, account_id: str,
    status_code: int = 200, error: str | None = None, form: dict[str, str] | None = None,
) -> HTMLResponse:
    standing = credits.standing(session, account_id)  # owners only, as in the API
    return render(
        request, "admin_account.html", admin, status_code, error=error,
        user=accounts.get_user(session, account_id), standing=standing,
        ledger=ledger_page(session, account_id, 20, None),
        assignment=clusters.assignment(session, account_id),
        stray_projects=clusters.stray_projects(session, account_id),
        notice=NOTICES.get(request.query_params.get("notice", "")),
        form=form or {}, grant_key=uuid.uuid4().hex,
        auto_topup=autotopup.view(session, account_id,
                                  autotopup.limits_from(request.app.state.settings)),
    )


@router.get("/console/admin/accounts/{account_id}")
def admin_account(
    request: Request, admin: AdminDep, session: SessionDep,
    account_id: Annotated[str, PathParam(min_length=1, max_length=255)],
) -> HTMLResponse:
    return _admin_account(request, admin, session, account_id)


@router.post("/console/admin/accounts/{account_id}/grant")
def admin_grant(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep,
    policy: PolicyDep, account_id: Annotated[str, PathParam(min_length=1, max_length=255)],
) -> Response:
    """Free credit with a reason. The form carries an idempotency key made when the page
    was rendered, so submitting it twice (a double click, a resent POST) grants once."""
    try:
        key = form.get("key", "")
        if not key or len(key) > 64:
            raise Invalid("the form has no grant key: reload the page and retry")
        expires = form.get("expires", "").strip()
        expires_at = parse_expiry_date(expires) if expires else None
        _attempt(session, lambda: credits.grant(
            session, account_id, form.get("amount", "").strip(),
            reason=form.get("reason", ""), origin=AdminGrant(key), expires_at=expires_at,
            granted_by=admin.user_id, hooks=policy.hooks, thresholds=policy.thresholds))
    except AppError as exc:
        return _admin_account(request, admin, session, account_id, exc.status,
                              error=message_for(exc), form=form)
    return RedirectResponse(
        f"/console/admin/accounts/{quote(account_id, safe='')}?notice=granted", status_code=303)


def _secret(form: dict[str, str], name: str) -> str | None:
    return form.get(name, "").strip() or None


@router.post("/console/admin/clusters")
def admin_register_cluster(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep
) -> Response:
    """Register a cluster with its two API keys (admin scopes, and AUTH only)."""
    box = SecretBox(request.app.state.settings.effective_encryption_keys)
    try:
        data = ClusterCreate.model_validate({
            "name": form.get("name", ""), "api_url": form.get("api_url", ""),
            "api_key": form.get("api_key", ""), "auth_api_key": _secret(form, "auth_api_key"),
            "max_users": form.get("max_users") or 100,
        })
        _attempt(session, lambda: clusters.register_cluster(session, box, data))
    except ValidationError as exc:
        return _admin_home(request, admin, session, 422, error=_first_error(exc))
    except AppError as exc:
        return _admin_home(request, admin, session, exc.status, error=message_for(exc))
    return RedirectResponse("/console/admin?notice=cluster-saved", status_code=303)


@router.post("/console/admin/clusters/{cluster_id}/keys")
def admin_cluster_keys(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep,
    cluster_id: uuid.UUID,
) -> Response:
    """Replace a cluster's admin key, its AUTH key, or both (an empty field keeps it)."""
    box = SecretBox(request.app.state.settings.effective_encryption_keys)
    try:
        data = ClusterUpdate.model_validate({"api_key": _secret(form, "api_key"),
                                             "auth_api_key": _secret(form, "auth_api_key")})
        if data.api_key is None and data.auth_api_key is None:
            raise Invalid("give a new admin API key, a new AUTH API key, or both")
        _attempt(session, lambda: clusters.update_cluster(session, box, cluster_id, data))
    except ValidationError as exc:
        return _admin_home(request, admin, session, 422, error=_first_error(exc))
    except AppError as exc:
        return _admin_home(request, admin, session, exc.status, error=message_for(exc))
    return RedirectResponse("/console/admin?notice=cluster-saved", status_code=303)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


@router.post("/console/admin/accounts/{account_id}/sign-out")
def admin_sign_out_everywhere(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep,
    account_id: Annotated[str, PathParam(min_length=1, max_length=255)],
) -> Response:
    """Sign the user out everywhere: every browser session of theirs is revoked."""
    try:
        accounts.get_user(session, account_id)
        web_sessions.end_all(session, account_id)
    except AppError as exc:
        return _admin_account(request, admin, session, account_id, exc.status,
                              error=message_for(exc))
    return RedirectResponse(
        f"/console/admin/accounts/{quote(account_id, safe='')}?notice=signed-out",
        status_code=303)
