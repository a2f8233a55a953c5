"""Console page of outbound webhooks (``/console/webhooks``), for the owner or an
organization admin (``WebhooksDep``): the endpoints, a form to add one (its signing secret
is shown on the answer page, once), rotating a secret, removing or re-enabling an
endpoint, each endpoint's recent deliveries and sending one again. Same services and
guards as the API's routes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hopsplane.crypto import SecretBox
from hopsplane.errors import AppError
from hopsplane.http.deps import Principal, SessionDep, WebhooksDep
from hopsplane.http.forms import FormDep
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import attempt, first_error, render
from hopsplane.webhooks import service as webhooks
from hopsplane.webhooks.rules import EVENT_TYPES
from hopsplane.webhooks.schemas import EndpointIn

router = APIRouter(include_in_schema=False, tags=["console"])

PAGE = "/console/webhooks"
NOTICES = {
    "removed": "Endpoint removed.",
    "enabled": "Endpoint turned back on.",
    "replayed": "Delivery queued again.",
}


def _box(request: Request) -> SecretBox:
    return SecretBox(request.app.state.settings.effective_encryption_keys)


def _page(request: Request, principal: Principal, session: Session, status_code: int = 200,
          **context: Any) -> HTMLResponse:
    endpoints = webhooks.endpoints(session, principal.account_id)
    recent = {e.id: webhooks.deliveries(session, principal.account_id, e.id)[:10]
              for e in endpoints}
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return render(request, "webhooks.html", principal, status_code, endpoints=endpoints,
                  recent=recent, event_types=EVENT_TYPES, notice=notice,
                  **{"created": None, **context})


@router.get(PAGE)
def page(request: Request, principal: WebhooksDep, session: SessionDep) -> HTMLResponse:
    return _page(request, principal, session)


@router.post(PAGE)
def add(request: Request, principal: WebhooksDep, session: SessionDep,
        form: FormDep) -> Response:
    """Register an endpoint; the answer shows its secret, once (no redirect)."""
    settings = request.app.state.settings
    try:
        body = EndpointIn(url=form.get("url", "").strip(),
                          event_types=[t for t in EVENT_TYPES if form.get(f"type:{t}")],
                          description=form.get("description", ""))
        created = attempt(session, lambda: webhooks.create_endpoint(
            session, _box(request), principal.account_id, body,
            created_by=principal.user_id,
            allow_http=settings.environment == "development"))
    except ValidationError as exc:
        return _page(request, principal, session, 422, error=first_error(exc))
    except AppError as exc:
        return _page(request, principal, session, exc.status, error=message_for(exc))
    return _page(request, principal, session, 201, created=created)


@router.post(f"{PAGE}/{{endpoint_id}}/rotate")
def rotate(request: Request, endpoint_id: uuid.UUID, principal: WebhooksDep,
           session: SessionDep, form: FormDep) -> Response:
    try:
        created = attempt(session, lambda: webhooks.rotate_secret(
            session, _box(request), principal.account_id, endpoint_id))
    except AppError as exc:
        return _page(request, principal, session, exc.status, error=message_for(exc))
    return _page(request, principal, session, created=created)


@router.post(f"{PAGE}/{{endpoint_id}}/remove")
def remove(request: Request, endpoint_id: uuid.UUID, principal: WebhooksDep,
           session: SessionDep, form: FormDep) -> Response:
    try:
        attempt(session, lambda: webhooks.delete_endpoint(
            session, principal.account_id, endpoint_id))
    except AppError as exc:
        return _page(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=removed", status_code=303)


@router.post(f"{PAGE}/{{endpoint_id}}/enable")
def enable(request: Request, endpoint_id: uuid.UUID, principal: WebhooksDep,
           session: SessionDep, form: FormDep) -> Response:
    try:
        attempt(session, lambda: webhooks.enable_endpoint(
            session, principal.account_id, endpoint_id))
    except AppError as exc:
        return _page(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=enabled", status_code=303)


@router.post(f"{PAGE}/{{endpoint_id}}/deliveries/{{delivery_id}}/replay")
def replay(request: Request, endpoint_id: uuid.UUID, delivery_id: uuid.UUID,
           principal: WebhooksDep, session: SessionDep, form: FormDep) -> Response:
    try:
        attempt(session, lambda: webhooks.replay(
            session, principal.account_id, endpoint_id, delivery_id))
    except AppError as exc:
        return _page(request, principal, session, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=replayed", status_code=303)
