"""Buying credits: Stripe Checkout top-ups, their success redirect, and Stripe's webhook.

- ``POST /v1/account/topups``: those who may buy for the account (others get 403);
  ``GET /v1/account/topups/{session_id}/complete``: any signed-in person whose account (or
  former account) the session names. Neither looks at the balance, so a suspended account can
  always top up; the purchase is what resumes it.
- ``POST /v1/stripe/webhook``: anonymous, authenticated by the Stripe signature over the
  raw body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, status

from hopsplane.api.errors import error_responses
from hopsplane.errors import PayloadTooLarge
from hopsplane.fields import Identifier
from hopsplane.http.deps import BuyDep, MemberDep, PolicyDep, SessionDep, may_buy
from hopsplane.http.state import GatewayDep
from hopsplane.payments import service, webhooks
from hopsplane.payments.schemas import TopupIn, TopupOut, TopupStatusOut, WebhookAck

router = APIRouter(tags=["payments"])

MAX_WEBHOOK_BYTES = 1_000_000


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: the signature covers these bytes, not a re-encoding."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"a Stripe event is at most {MAX_WEBHOOK_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"a Stripe event is at most {MAX_WEBHOOK_BYTES} bytes")
    return body


@router.post(
    "/v1/account/topups",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 422, 503),
    summary="Start buying credits (Stripe Checkout)",
)
def create_topup(
    body: TopupIn,
    principal: BuyDep,
    session: SessionDep,
    gateway: GatewayDep,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Retrying with the same key returns the same "
               "Checkout Session (Stripe's idempotency)."),
    ] = None,
) -> TopupOut:
    """Create a Stripe Checkout Session for `amount` credits (one credit per currency unit,
    within the configured minimum and maximum) and return its URL. Owners only; allowed
    whatever the balance, so a suspended account can pay to resume."""
    return service.start_topup(
        session, gateway, principal.account_id, body.amount, idempotency_key=idempotency_key
    )


@router.get(
    "/v1/account/topups/{session_id}/complete",
    responses=error_responses(401, 403, 404, 422, 503),
    summary="Success redirect of a top-up: credit it now if it is paid",
)
def complete_topup(
    request: Request,
    session_id: Annotated[Identifier, Path(description="The Checkout Session id (cs_...).")],
    principal: MemberDep,
    session: SessionDep,
    gateway: GatewayDep,
    policy: PolicyDep,
) -> TopupStatusOut:
    """Stripe sends the buyer here after paying. Reads the Checkout Session from Stripe and,
    when it is paid, credits it at once (the same idempotent fulfilment as the webhook, so
    whichever comes first credits and the other changes nothing). Any signed-in person may
    complete a session that names their account, or their own former account (a buyer who
    has joined a team since): the payment is credited either way; the balance is shown to
    those who may buy for the account."""
    return service.complete_topup(
        session, gateway, principal.account_id, session_id, policy,
        user_id=principal.user_id, sees_balance=may_buy(request, principal, session),
    )


@router.post(
    "/v1/stripe/webhook",
    tags=["webhooks"],
    responses=error_responses(401, 413, 422, 503),
    summary="Stripe webhook endpoint (signed events)",
)
def stripe_webhook(
    body: Annotated[bytes, Depends(raw_body)],
    session: SessionDep,
    gateway: GatewayDep,
    policy: PolicyDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    """Verify the `Stripe-Signature` of the raw body (5 minutes tolerance), refuse events of
    the other mode (test/live), store the event once by id and process it in the same
    transaction. Repeated deliveries answer 200 and change nothing."""
    event = gateway.verify_event(body, stripe_signature)
    outcome = webhooks.handle_event(session, gateway, event, policy)
    return WebhookAck(event_id=outcome.event_id, status=outcome.status, note=outcome.note)
