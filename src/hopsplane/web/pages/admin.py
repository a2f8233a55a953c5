"""Platform admins: clusters and their capacity, any account by id or email, grants with a
reason, cluster keys, signing a user out everywhere."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.clusters import service as clusters
from hopsplane.clusters.rules import ClusterStatus
from hopsplane.clusters.schemas import ClusterCreate, ClusterUpdate
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant
from hopsplane.credits.rules import parse_expiry_date
from hopsplane.crypto import SecretBox
from hopsplane.errors import AppError, Invalid, NotFound
from hopsplane.http.deps import (
    AdminDep,
    PolicyDep,
    Principal,
    SessionDep,
)
from hopsplane.http.forms import FormDep
from hopsplane.http.pagination import ledger_page, time_cursor, time_page
from hopsplane.money import MAX_AMOUNT
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.sessions import service as web_sessions
from hopsplane.web.messages import message_for
from hopsplane.web.pages.api_keys import audit_log
from hopsplane.web.rendering import (
    NOTICES,
    attempt,
    check_amount,
    first_error,
    render,
)
from hopsplane.worker import service as worker

router = APIRouter(include_in_schema=False, tags=["console"])

ADMIN_CLUSTERS = 200
ADMIN_USERS = 50
CLUSTER_FIELDS = {
    "name": "The name", "api_url": "The API URL", "api_key": "The admin API key",
    "auth_api_key": "The AUTH API key", "max_users": "Max accounts",
}
"""How the cluster forms name their fields in a refusal."""


@router.get("/console/admin")
def admin_home(request: Request, admin: AdminDep, session: SessionDep) -> HTMLResponse:
    """Clusters and their capacity, and a lookup of any account."""
    return _admin_home(request, admin, session)


def _admin_home(request: Request, admin: Principal, session: Session, status_code: int = 200,
                error: str | None = None, q: str = "") -> HTMLResponse:
    rows, more = clusters.list_clusters(session, limit=ADMIN_CLUSTERS)
    cursor = request.query_params.get("users") or None
    try:
        users = time_page(accounts.list_users(session, limit=ADMIN_USERS,
                                              after=time_cursor(cursor)), ADMIN_USERS)
    except AppError:
        users = time_page(accounts.list_users(session, limit=ADMIN_USERS), ADMIN_USERS)
    return render(request, "admin.html", admin, status_code, error=error, q=q,
                  clusters=rows, more=more is not None, users=users, first_users=cursor is None,
                  worker_stopped=worker.seems_stopped(session),
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
    assignment = clusters.assignment(session, account_id)
    return render(
        request, "admin_account.html", admin, status_code, error=error,
        user=accounts.get_user(session, account_id), standing=standing,
        ledger=ledger_page(session, account_id, 20, None),
        assignment=assignment,
        assigned_cluster=clusters.get_cluster(session, assignment.hopsworks_cluster_id)
        if assignment is not None else None,
        clusters=clusters.list_clusters(session, limit=ADMIN_CLUSTERS)[0],
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
        check_amount(form.get("amount", ""), "The amount",
                     request.app.state.settings.stripe_currency, maximum=MAX_AMOUNT)
        if not form.get("reason", "").strip():
            raise Invalid("Type the reason for the grant: the customer reads it in their "
                          "ledger.")
        expires = form.get("expires", "").strip()
        expires_at = parse_expiry_date(expires) if expires else None
        attempt(session, lambda: credits.grant(
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
        attempt(session, lambda: clusters.register_cluster(session, box, data))
    except ValidationError as exc:
        return _admin_home(request, admin, session, 422, error=first_error(exc, CLUSTER_FIELDS))
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
            raise Invalid("Type a new admin API key, a new AUTH API key, or both: an empty "
                          "field keeps the key the cluster has.")
        attempt(session, lambda: clusters.update_cluster(session, box, cluster_id, data))
    except ValidationError as exc:
        return _admin_home(request, admin, session, 422, error=first_error(exc, CLUSTER_FIELDS))
    except AppError as exc:
        return _admin_home(request, admin, session, exc.status, error=message_for(exc))
    return RedirectResponse("/console/admin?notice=cluster-saved", status_code=303)



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


STATUS_ACTIONS = {"activate": ClusterStatus.ACTIVE, "drain": ClusterStatus.DRAINING,
                  "disable": ClusterStatus.DISABLED}


@router.post("/console/admin/clusters/{cluster_id}/{action}")
def admin_cluster_status(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep,
    cluster_id: uuid.UUID, action: Annotated[str, PathParam(max_length=16)],
) -> Response:
    """Put a cluster into service, drain it (no new accounts) or disable it: the console's
    form of ``POST /v1/admin/clusters/{id}/activate|drain|disable``."""
    try:
        new = STATUS_ACTIONS.get(action)
        if new is None:
            raise NotFound("A cluster can be activated, drained or disabled, nothing else.")
        attempt(session, lambda: clusters.set_status(session, cluster_id, new))
    except AppError as exc:
        return _admin_home(request, admin, session, exc.status, error=message_for(exc))
    return RedirectResponse(f"/console/admin?notice=cluster-{action}", status_code=303)


@router.post("/console/admin/accounts/{account_id}/cluster")
def admin_assign_cluster(
    request: Request, admin: AdminDep, session: SessionDep, form: FormDep,
    account_id: Annotated[str, PathParam(min_length=1, max_length=255)],
) -> Response:
    """Place the account on a cluster, or move it there, by hand (recorded as this admin's
    decision): the console's form of ``POST /v1/admin/clusters/{id}/accounts``."""
    try:
        try:
            cluster_id = uuid.UUID(form.get("cluster_id", ""))
        except ValueError as exc:
            raise Invalid("Pick the cluster to place this account on.") from exc
        attempt(session, lambda: clusters.move_account(
            session, account_id, cluster_id, assigned_by=admin.user_id))
    except AppError as exc:
        return _admin_account(request, admin, session, account_id, exc.status,
                              error=message_for(exc))
    return RedirectResponse(
        f"/console/admin/accounts/{quote(account_id, safe='')}?notice=cluster-assigned",
        status_code=303)
@router.get("/console/admin/audit")
def admin_audit(
    request: Request, admin: AdminDep, session: SessionDep,
    account_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_.]*$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """The whole audit log (or one account's), newest first."""
    return audit_log(request, admin, session, account_id or None, action, before,
                     base="/console/admin/audit", csv="/v1/admin/audit.csv", every=True)
