"""API keys and the audit log of the account, for the owner and organization admins: make
a key (its secret shown on the answer page, once), revoke one; read who decided what."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.apikeys import service as api_keys
from hopsplane.apikeys.rules import Scope
from hopsplane.apikeys.schemas import ApiKeyCreated, ApiKeyIn
from hopsplane.audit import service as audit
from hopsplane.errors import AppError, Invalid
from hopsplane.http.deps import Principal, SessionDep, TeamDep
from hopsplane.http.forms import FormDep
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import attempt, render

router = APIRouter(include_in_schema=False, tags=["console"])

AUDIT_PAGE = 50


def _keys(request: Request, principal: Principal, session: Session, status_code: int = 200,
          error: str | None = None, created: ApiKeyCreated | None = None) -> HTMLResponse:
    notice = "Key revoked: it no longer works." if request.query_params.get(
        "notice") == "revoked" else None
    return render(request, "api_keys.html", principal, status_code, error=error,
                  notice=notice, created=created, scopes=[s.value for s in Scope],
                  keys=api_keys.list_keys(session, principal.account_id))


@router.get("/console/api-keys")
def keys_page(request: Request, principal: TeamDep, session: SessionDep) -> HTMLResponse:
    return _keys(request, principal, session)


@router.post("/console/api-keys")
def create_key(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep
) -> Response:
    """The answer page is the only place the secret is shown (no redirect: a reload or the
    browser's history never brings it back)."""
    try:
        try:
            wanted = ApiKeyIn(
                name=form.get("name", ""),
                scopes=[s for s in Scope if form.get(f"scope:{s.value}") == "on"],
                expires_in_days=int(form.get("expires_in_days", "90") or "90"),
            )
        except (ValidationError, ValueError) as exc:
            raise Invalid("give the key a name, at least one scope and a lifetime of 1 to "
                          "366 days") from exc
        created = attempt(session, lambda: api_keys.create(
            session, principal.account_id, principal.user_id, wanted))
    except AppError as exc:
        return _keys(request, principal, session, exc.status, error=message_for(exc))
    response = _keys(request, principal, session, 201, created=created)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/console/api-keys/{key_id}/revoke")
def revoke_key(
    request: Request, principal: TeamDep, session: SessionDep, form: FormDep,
    key_id: uuid.UUID,
) -> Response:
    try:
        attempt(session, lambda: api_keys.revoke(session, principal.account_id, key_id))
    except AppError as exc:
        return _keys(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse("/console/api-keys?notice=revoked", status_code=303)


@router.get("/console/audit")
def audit_page(
    request: Request, principal: TeamDep, session: SessionDep,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_.]*$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """The account's audit log, newest first, a page at a time, filtered by action."""
    return audit_log(request, principal, session, principal.account_id, action, before,
                     base="/console/audit", csv="/v1/account/audit.csv")


def audit_log(request: Request, principal: Principal, session: Session, account_id: str | None,
              action: str | None, before: int | None, *, base: str, csv: str,
              every: bool = False) -> HTMLResponse:
    """A page of the audit log (an account's, or with ``every`` the platform's, where
    ``account_id`` filters), newest first; the filters carried by the paging links."""
    entries = audit.entries(session, account_id=account_id, action=action or None,
                            before_id=before, limit=AUDIT_PAGE)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    filters = {"action": action or ""} | ({"account_id": account_id or ""} if every else {})
    return render(request, "audit.html", principal, entries=entries, action=action or "",
                  account_id=account_id or "", older=older, first=before is None, base=base,
                  csv=csv, every=every, query=urlencode({k: v for k, v in filters.items() if v}))
