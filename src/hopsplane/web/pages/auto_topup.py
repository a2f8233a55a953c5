"""Console pages of auto top-up (``/console/auto-topup``), for whoever may buy credits
(``BuyDep``: the owner, or an organization ``billing``/``admin``): the state, the settings
with the exact terms to agree to (a review step shows them before the consent is recorded),
saving and removing the card through Stripe Checkout, turning it off, and paying an auto
top-up the bank wants authenticated. Same services and guards as the API's routes."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.errors import AppError
from hopsplane.http.deps import BuyDep, Principal, SessionDep
from hopsplane.http.forms import FormDep
from hopsplane.http.state import GatewayDep, LimitsDep
from hopsplane.integrations.stripe import SESSION_ID_PLACEHOLDER
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.autotopup.rules import Limits, terms_text, validate_settings
from hopsplane.web.messages import message_for
from hopsplane.web.rendering import attempt, check_amount, render

router = APIRouter(include_in_schema=False, tags=["console"])

PAGE = "/console/auto-topup"
NOTICES = {
    "saved": "Auto top-up settings saved with your consent.",
    "card-saved": "Card saved: auto top-up charges it when your balance falls below the "
                  "threshold.",
    "off": "Auto top-up is off: nothing more will be charged.",
    "card-removed": "Card removed and auto top-up turned off.",
    "paid": "Thank you: the payment is credited as soon as Stripe confirms it.",
}


def _page(request: Request, principal: Principal, session: Session, limits: Limits,
          status_code: int = 200, **context: Any) -> HTMLResponse:
    gateway = getattr(request.app.state, "stripe", None)
    state = autotopup.view(session, principal.account_id, limits)
    key = request.query_params.get("notice", "")
    notice = NOTICES.get(key) or (NOTICES["paid"] if request.query_params.get("paid") else None)
    by = state.consent.given_by if state.consent else None
    consent_by = accounts.people_of(session, principal.account_id, [by]).get(by) if by else None
    return render(request, "auto_topup.html", principal, status_code, state=state,
                  consent_by=consent_by,
                  attempts=autotopup.attempts(session, principal.account_id, 20),
                  payments_on=gateway is not None, notice=notice,
                  **{"review": None, **context})


def _base(request: Request) -> str:
    return str(request.app.state.settings.public_url).rstrip("/")


@router.get(PAGE)
def page(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep
         ) -> HTMLResponse:
    return _page(request, principal, session, limits)


@router.post(f"{PAGE}/review")
def review(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep,
           gateway: GatewayDep, form: FormDep) -> HTMLResponse:
    """Show the exact terms of the typed settings; nothing is saved yet."""
    config = gateway.config
    try:
        check_amount(form.get("threshold", ""), "The threshold", config.currency,
                     minimum=Decimal("0.00"), maximum=config.max_topup, example="10.00")
        check_amount(form.get("amount", ""), "The amount to buy", config.currency,
                     minimum=config.min_topup, maximum=config.max_topup)
        below, value = validate_settings(form.get("threshold", "").strip(),
                                         form.get("amount", "").strip(),
                                         config.min_topup, config.max_topup)
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return _page(request, principal, session, limits, review={
        "threshold": below, "amount": value,
        "terms": terms_text(below, value, config.currency, limits)})


@router.post(PAGE)
def save(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep,
         gateway: GatewayDep, form: FormDep) -> Response:
    try:
        attempt(session, lambda: autotopup.configure(
            session, gateway.config, limits, principal.account_id, principal.user_id,
            form.get("threshold", "").strip(), form.get("amount", "").strip(),
            form.get("accept_terms") == "yes"))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=saved", status_code=303)


@router.post(f"{PAGE}/card")
def save_card(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep,
              gateway: GatewayDep, form: FormDep) -> Response:
    """Send the browser to Stripe Checkout (setup mode) to save a card."""
    base = _base(request)
    try:
        link = attempt(session, lambda: autotopup.start_card_setup(
            session, gateway, principal.account_id,
            f"{base}{PAGE}/card/{SESSION_ID_PLACEHOLDER}", f"{base}{PAGE}"))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(link.url, status_code=303)


@router.get(f"{PAGE}/card/{{session_id}}")
def card_saved(request: Request, session_id: str, principal: BuyDep, session: SessionDep,
               limits: LimitsDep, gateway: GatewayDep) -> Response:
    """Checkout's success redirect: record the card now (the webhook does it too)."""
    try:
        attempt(session, lambda: autotopup.complete_card_setup(
            session, gateway, limits, principal.account_id, session_id[:255]))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=card-saved", status_code=303)


@router.post(f"{PAGE}/off")
def turn_off(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep,
             form: FormDep) -> Response:
    try:
        attempt(session, lambda: autotopup.turn_off(
            session, limits, principal.account_id, principal.user_id))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=off", status_code=303)


@router.post(f"{PAGE}/card/remove")
def remove_card(request: Request, principal: BuyDep, session: SessionDep, limits: LimitsDep,
                gateway: GatewayDep, form: FormDep) -> Response:
    try:
        attempt(session, lambda: autotopup.remove_card(
            session, gateway, limits, principal.account_id, principal.user_id))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(f"{PAGE}?notice=card-removed", status_code=303)


@router.post(f"{PAGE}/attempts/{{attempt_id}}/complete")
def complete(request: Request, attempt_id: uuid.UUID, principal: BuyDep, session: SessionDep,
             limits: LimitsDep, gateway: GatewayDep, form: FormDep) -> Response:
    """Pay an auto top-up the bank wants authenticated, on Stripe's Checkout page."""
    base = _base(request)
    try:
        link = attempt(session, lambda: autotopup.start_authentication(
            session, gateway, principal.account_id, attempt_id, f"{base}{PAGE}?paid=1",
            f"{base}{PAGE}"))
    except AppError as exc:
        return _page(request, principal, session, limits, exc.status, error=message_for(exc))
    return RedirectResponse(link.url, status_code=303)
