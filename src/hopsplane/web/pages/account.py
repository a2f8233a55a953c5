"""The customer's own account: home (profile, balance, buy credits), the ledger (owner),
usage (everyone; a member sees their own share) and their CSV exports."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.billing import service as billing
from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import ClusterOut
from hopsplane.credits import service as credits
from hopsplane.credits.rules import standing_words
from hopsplane.errors import AppError
from hopsplane.http import exports
from hopsplane.http.deps import (
    BuyDep,
    LedgerDep,
    MemberDep,
    Principal,
    SessionDep,
    sees_account_usage,
)
from hopsplane.http.forms import FormDep
from hopsplane.http.pagination import ledger_page
from hopsplane.http.state import (
    GatewayDep,
)
from hopsplane.integrations.stripe import StripeGateway
from hopsplane.payments import receipts
from hopsplane.payments import service as payments
from hopsplane.web import charts
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import (
    NOTICES,
    attempt,
    capabilities_of,
    check_amount,
    date_range,
    render,
)
from hopsplane.worker import service as worker

router = APIRouter(include_in_schema=False, tags=["console"])

RUNWAY_DAYS = 7


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
    settings = request.app.state.settings
    words = None
    if standing is not None:
        low = standing.notice_threshold
        words = standing_words(
            standing.balance, standing.suspended,
            charts.money(low, settings.stripe_currency)
            if low is not None and standing.balance <= low else None)
    return render(request, "home.html", principal, status_code, error=error, profile=profile,
                  standing=standing, words=words, stopped=stopped, runway=runway,
                  topups=topups, cluster=cluster,
                  waiting=None if cluster is not None else _why_no_cluster(session),
                  project_url=project_url(cluster, profile.hopsworks_project_id),
                  project=clusters.project_name(
                      session, principal.account_id, profile.hopsworks_project_id),
                  can_buy="buy" in caps and stripe is not None,
                  topup=stripe.config if stripe is not None else None,
                  notice=NOTICES.get(request.query_params.get("notice", "")))


def _why_no_cluster(session: Session) -> str:
    """Why an account has no cluster yet: none is registered, no worker runs to place it,
    or it is being placed right now."""
    rows, _ = clusters.list_clusters(session, limit=1)
    if not rows:
        return "none-registered"
    if worker.seems_stopped(session):
        return "no-worker"
    return "placing"


def project_url(cluster: ClusterOut | None, project_id: int | None) -> str | None:
    """The Hopsworks page of a project on its cluster (the cluster's own web address)."""
    if cluster is None or project_id is None:
        return None
    return f"{str(cluster.api_url).rstrip('/')}/p/{project_id}/view"


@router.post("/console/topup")
def topup(
    request: Request, principal: BuyDep, session: SessionDep, gateway: GatewayDep,
    form: FormDep,
) -> Response:
    """Start a Stripe Checkout for the amount typed in, and send the browser there."""
    config = gateway.config
    try:
        check_amount(form.get("amount", ""), "The amount", config.currency,
                     minimum=config.min_topup, maximum=config.max_topup)
        out = attempt(session, lambda: payments.start_topup(
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
        first, last = date_range(date_from, date_to)
        report = billing.usage_report(session, principal.account_id, first, last,
                                      member_id=member)
    except AppError as exc:
        status_code, error = exc.status, message_for(exc)
        first, last = date_range("", "")
        report = billing.usage_report(session, principal.account_id, first, last,
                                      member_id=member)
    ids = [uid for d in report.days for uid in d.user_breakdown]
    people = accounts.people_of(session, principal.account_id, ids)
    wide, narrow = charts.pair(report.days, people, request.app.state.settings.stripe_currency,
                               first, last, accounts.people_order(session, principal.account_id))
    return render(request, "usage.html", principal, status_code, error=error, report=report,
                  chart=wide, narrow=narrow, people=people, nobody=charts.NOBODY,
                  typed={"from": date_from, "to": date_to} if error else None)


@router.get("/console/usage.csv")
def usage_export(
    request: Request, principal: MemberDep, session: SessionDep,
    date_from: Annotated[str, Query(alias="from", max_length=32)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> Response:
    """The usage page's range as CSV: the rows of ``GET /v1/account/usage.csv``."""
    first, last = date_range(date_from, date_to)
    exports.check_usage_range(session, principal.account_id, first, last)
    member = None if sees_account_usage(request, principal, session) else principal.user_id
    return exports.usage_csv(request, principal.account_id, first, last,
                             frozenset({member}) if member else None)


@router.get("/console/ledger.csv")
def ledger_export(request: Request, principal: LedgerDep, session: SessionDep) -> Response:
    """The whole ledger as CSV: the rows of ``GET /v1/account/ledger.csv``."""
    credits.require_owner(session, principal.account_id)
    return exports.ledger_csv(request, principal.account_id)
