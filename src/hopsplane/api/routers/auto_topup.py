"""Auto top-up: an owner's standing order to buy credit with a saved card.

Every route but the admin one passes ``BuyDep``: the owner, or a person whose organization
role may buy credits (``billing``, ``admin``), acting on the owner's account; the consent
records who agreed. ``GET /v1/admin/users/{user_id}/auto-topup``: platform admins.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from hopsplane.api.errors import error_responses
from hopsplane.fields import Identifier
from hopsplane.http.deps import AdminDep, BuyDep, SessionDep
from hopsplane.http.state import GatewayDep, LimitsDep
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.autotopup.schemas import AutoTopupIn, AutoTopupOut, CheckoutLinkOut

router = APIRouter(tags=["auto top-up"])

BASE = "/v1/account/auto-topup"


def _urls(request: Request, success: str) -> tuple[str, str]:
    base = request.app.state.settings.public_url.rstrip("/")
    return f"{base}{success}", f"{base}/console/auto-topup?setup=cancelled"


@router.get(BASE, responses=error_responses(401, 403), summary="Auto top-up: state")
def get_auto_topup(principal: BuyDep, session: SessionDep, limits: LimitsDep) -> AutoTopupOut:
    """On, off, awaiting a card, or paused and why; the saved card, the consent in force,
    today's charges against the limits, the last attempt and one waiting for the owner."""
    return autotopup.view(session, principal.account_id, limits)


@router.put(BASE, responses=error_responses(401, 403, 404, 422, 503),
            summary="Auto top-up: set threshold and amount and agree to the terms")
def put_auto_topup(
    body: AutoTopupIn, principal: BuyDep, session: SessionDep, gateway: GatewayDep,
    limits: LimitsDep,
) -> AutoTopupOut:
    """Records the consent (the terms text of these settings, who, when). Turns on when a
    card is saved; otherwise `awaiting_card` (save one with `POST .../card`)."""
    return autotopup.configure(
        session, gateway.config, limits, principal.account_id, principal.user_id,
        body.threshold, body.amount, body.accept_terms,
    )


@router.delete(BASE, responses=error_responses(401, 403, 404),
               summary="Auto top-up: turn off (revokes the consent)")
def delete_auto_topup(principal: BuyDep, session: SessionDep, limits: LimitsDep
                      ) -> AutoTopupOut:
    return autotopup.turn_off(session, limits, principal.account_id, principal.user_id)


@router.post(f"{BASE}/card", status_code=status.HTTP_201_CREATED,
             responses=error_responses(401, 403, 409, 503),
             summary="Auto top-up: save a card (Stripe Checkout, setup mode)")
def post_card(request: Request, principal: BuyDep, session: SessionDep, gateway: GatewayDep
              ) -> CheckoutLinkOut:
    success, cancel = _urls(request, BASE + "/card/{CHECKOUT_SESSION_ID}/complete")
    return autotopup.start_card_setup(session, gateway, principal.account_id, success, cancel)


@router.get(f"{BASE}/card/{{session_id}}/complete", responses=error_responses(
    401, 403, 404, 422, 503), summary="Auto top-up: success redirect of the card setup")
def complete_card(
    session_id: Annotated[Identifier, Path(description="The Checkout Session id (cs_...).")],
    principal: BuyDep, session: SessionDep, gateway: GatewayDep, limits: LimitsDep,
) -> AutoTopupOut:
    return autotopup.complete_card_setup(session, gateway, limits, principal.account_id,
                                         session_id)


@router.delete(f"{BASE}/card", responses=error_responses(401, 403, 404, 503),
               summary="Auto top-up: remove the card (turns auto top-up off)")
def delete_card(principal: BuyDep, session: SessionDep, gateway: GatewayDep,
                limits: LimitsDep) -> AutoTopupOut:
    return autotopup.remove_card(session, gateway, limits, principal.account_id,
                                 principal.user_id)


@router.post(f"{BASE}/attempts/{{attempt_id}}/complete", status_code=status.HTTP_201_CREATED,
             responses=error_responses(401, 403, 404, 409, 422, 503),
             summary="Auto top-up: pay one that needs authentication (3-D Secure)")
def complete_attempt(
    attempt_id: uuid.UUID, request: Request, principal: BuyDep, session: SessionDep,
    gateway: GatewayDep,
) -> CheckoutLinkOut:
    """A Checkout Session for the attempt's amount: Stripe's page asks the bank's
    authentication, and its payment settles the attempt (credited once)."""
    success, cancel = _urls(request, "/console/auto-topup?paid=1")
    return autotopup.start_authentication(session, gateway, principal.account_id, attempt_id,
                                          success, cancel)


@router.get("/v1/admin/users/{user_id}/auto-topup", responses=error_responses(401, 403, 404, 422),
            summary="Auto top-up of any account (platform admins)")
def admin_auto_topup(
    user_id: Annotated[Identifier, Path()], principal: AdminDep, session: SessionDep,
    limits: LimitsDep,
) -> AutoTopupOut:
    return autotopup.view(session, user_id, limits)
