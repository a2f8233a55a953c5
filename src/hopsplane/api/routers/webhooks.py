"""Outbound webhooks of an account: endpoints, their secrets and their delivery log.

Every route passes ``WebhooksDep``: the account owner, or an organization admin of the
account, or an API key of the account with ``webhooks:manage`` (``MANAGE``: a key acts on
its own account only, since every route reads ``principal.account_id``). A new or rotated
signing secret is in that answer only; it is stored encrypted and never shown again.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from hopsplane.api.errors import error_responses
from hopsplane.apikeys.rules import Scope
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.http.apikeys import key_scope
from hopsplane.http.deps import SessionDep, WebhooksDep
from hopsplane.webhooks import service
from hopsplane.webhooks.rules import EVENT_TYPES
from hopsplane.webhooks.schemas import (
    DeliveryOut,
    EndpointChange,
    EndpointIn,
    EndpointOut,
    EndpointWithSecret,
)

# not "webhooks": that tag marks the signed inbound webhooks, which carry no bearer token
router = APIRouter(tags=["outbound webhooks"])

BASE = "/v1/account/webhooks"


def secret_box(request: Request) -> SecretBox:
    settings: Settings = request.app.state.settings
    return SecretBox(settings.effective_encryption_keys)


BoxDep = Annotated[SecretBox, Depends(secret_box)]
MANAGE = key_scope(Scope.WEBHOOKS_MANAGE)


@router.get(BASE, responses=error_responses(401, 403), openapi_extra=MANAGE,
            summary="Webhook endpoints")
def list_endpoints(principal: WebhooksDep, session: SessionDep) -> list[EndpointOut]:
    return service.endpoints(session, principal.account_id)


@router.post(BASE, status_code=status.HTTP_201_CREATED,
             responses=error_responses(401, 403, 409, 422),
             openapi_extra=MANAGE, summary="Register a webhook endpoint (its secret is shown once)")
def create_endpoint(body: EndpointIn, principal: WebhooksDep, session: SessionDep,
                    box: BoxDep, request: Request) -> EndpointWithSecret:
    """`https` only (plain `http` in development), never a loopback, private, link-local
    or metadata address (checked again on the resolved address at every send). Event
    types: see `GET /v1/account/webhook-event-types`."""
    settings: Settings = request.app.state.settings
    return service.create_endpoint(
        session, box, principal.account_id, body, created_by=principal.user_id,
        allow_http=settings.environment == "development")


@router.get("/v1/account/webhook-event-types", responses=error_responses(401, 403),
            openapi_extra=MANAGE, summary="The event types an endpoint may subscribe to")
def event_types(principal: WebhooksDep) -> list[str]:
    return list(EVENT_TYPES)


@router.delete(f"{BASE}/{{endpoint_id}}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(401, 403, 404, 422),
               openapi_extra=MANAGE, summary="Remove a webhook endpoint and its delivery log")
def delete_endpoint(endpoint_id: uuid.UUID, principal: WebhooksDep,
                    session: SessionDep) -> None:
    service.delete_endpoint(session, principal.account_id, endpoint_id)


@router.post(f"{BASE}/{{endpoint_id}}/rotate-secret",
             responses=error_responses(401, 403, 404, 422),
             openapi_extra=MANAGE,
             summary="A new signing secret (shown once); the old one signs too for 24 h")
def rotate_secret(endpoint_id: uuid.UUID, principal: WebhooksDep, session: SessionDep,
                  box: BoxDep) -> EndpointWithSecret:
    return service.rotate_secret(session, box, principal.account_id, endpoint_id)


@router.patch(f"{BASE}/{{endpoint_id}}", responses=error_responses(401, 403, 404, 422),
              openapi_extra=MANAGE, summary="Change an endpoint's event types, description "
              "or whether it is on")
def change_endpoint(endpoint_id: uuid.UUID, body: EndpointChange, principal: WebhooksDep,
                    session: SessionDep) -> EndpointOut:
    return service.change_endpoint(session, principal.account_id, endpoint_id, body)


@router.post(f"{BASE}/{{endpoint_id}}/enable", responses=error_responses(401, 403, 404, 422),
             openapi_extra=MANAGE, summary="Turn a disabled endpoint back on")
def enable_endpoint(endpoint_id: uuid.UUID, principal: WebhooksDep,
                    session: SessionDep) -> EndpointOut:
    return service.enable_endpoint(session, principal.account_id, endpoint_id)


@router.get(f"{BASE}/{{endpoint_id}}/deliveries", responses=error_responses(401, 403, 404, 422),
            openapi_extra=MANAGE, summary="The endpoint's recent deliveries (newest first)")
def deliveries(endpoint_id: uuid.UUID, principal: WebhooksDep,
               session: SessionDep) -> list[DeliveryOut]:
    return service.deliveries(session, principal.account_id, endpoint_id)


@router.post(f"{BASE}/{{endpoint_id}}/deliveries/{{delivery_id}}/replay",
             status_code=status.HTTP_202_ACCEPTED,
             responses=error_responses(401, 403, 404, 422),
             openapi_extra=MANAGE, summary="Send a delivery again (same webhook-id)")
def replay(endpoint_id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksDep,
           session: SessionDep) -> DeliveryOut:
    return service.replay(session, principal.account_id, endpoint_id, delivery_id)
