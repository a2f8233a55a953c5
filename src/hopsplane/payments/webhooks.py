"""Stripe's webhook events, each routed to the piece of the payments domain it concerns.

The one module that knows every kind of event, so it sits above the pieces it routes to:
top-ups, refunds and the purchase core (:mod:`hopsplane.payments.service`), disputes
(:mod:`hopsplane.payments.disputes`) and auto top-up
(:mod:`hopsplane.payments.autotopup.service`). None of them imports this module, and auto
top-up and disputes credit or look up a payment only through the purchase core, so
imports inside the domain point one way (a lint-imports contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import structlog
from sqlalchemy.orm import Session

from hopsplane.credits.schemas import BalancePolicy
from hopsplane.errors import AppError, Invalid, Unavailable
from hopsplane.integrations.stripe.parse import checkout_session_from, payment_intent_from
from hopsplane.integrations.stripe.types import ACCOUNT_METADATA_KEY, StripeGateway, WebhookEvent
from hopsplane.payments import receipts, rules
from hopsplane.payments import repository as repo
from hopsplane.payments import service as purchases
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.disputes import sync_dispute
from hopsplane.payments.schemas import EventOutcome, Payment

log = structlog.get_logger(__name__)


def handle_event(
    session: Session,
    gateway: StripeGateway,
    event: WebhookEvent,
    policy: BalancePolicy = purchases.NO_POLICY,
) -> EventOutcome:
    """Store a verified event once and process it in the same transaction.

    A repeated delivery of a stored event changes nothing. A refund Stripe made is posted
    whatever the balance (it may overdraw and suspend, like a dispute: the money is gone).
    A problem with the event itself (unknown account, wrong currency) is recorded as
    ``failed`` and acknowledged, since Stripe resending it would not help (``stripe
    reconcile`` lists it). Stripe being unreachable raises Unavailable: nothing is stored and
    Stripe delivers again later.
    """
    expected = gateway.mode == "live"
    if event.livemode != expected:
        raise Invalid(
            f"event {event.id} is a {'live' if event.livemode else 'test'}-mode event; this "
            f"server is configured for {gateway.mode} mode"
        )
    if not repo.insert_event(session, event):
        return EventOutcome(event.id, "duplicate")
    object_id = event.object.get("id")
    account: str | None = None
    status: Done
    try:
        with session.begin_nested():
            status, account, note = _process(session, gateway, event, policy)
    except Unavailable:
        raise
    except AppError as exc:
        status, note = "failed", exc.message
        log.warning("stripe event failed", event_id=event.id, type=event.type, error=exc.message)
    repo.finish_event(
        session, event.id, status, object_id=str(object_id) if object_id else None,
        account_id=account, error=note if status == "failed" else None,
    )
    return EventOutcome(event.id, status, note, account)


Done = Literal["processed", "ignored", "failed"]


def _process(
    session: Session, gateway: StripeGateway, event: WebhookEvent, policy: BalancePolicy
) -> tuple[Done, str | None, str | None]:
    if event.type in rules.PURCHASE_EVENTS:
        checkout = checkout_session_from(event.object)
        if checkout.mode == "setup":  # auto top-up's saved card
            owner = rules.account_from(checkout.metadata, checkout.client_reference_id)
            saved = autotopup.card_saved(session, gateway, owner, checkout.setup_intent_id)
            return ("processed", owner, "card saved") if saved else (
                "ignored", owner, "setup not succeeded")
        if checkout.mode != "payment":
            return "ignored", None, "not a one-time payment"
        payment = rules.payment_from_checkout(checkout, gateway.config.currency)
        if payment is None:
            return "ignored", None, f"payment status is {checkout.payment_status}"
        if autotopup.ATTEMPT_METADATA_KEY in checkout.metadata:  # completed after 3-D Secure
            return _auto_topup_paid(session, checkout.metadata, payment, policy)
        result = purchases.fulfil_payment(session, payment, policy)
        receipts.record_from_checkout(session, gateway, checkout,
                                      purchases.as_credited(payment, result))
        note = "credited" if result.created else "already credited"
        return "processed", result.entry.account_owner_id, note
    if event.type in rules.DISPUTE_EVENTS:
        dispute_id = event.object.get("id")
        if not isinstance(dispute_id, str) or not dispute_id.startswith("dp_"):
            return "ignored", None, "no dispute to read"
        account = sync_dispute(session, gateway, dispute_id, policy)
        return ("processed", account, None) if account else ("ignored", None, "not a top-up")
    if event.type in rules.REFUND_EVENTS:
        charge_id = event.object.get("id") if event.type == "charge.refunded" else (
            event.object.get("charge")
        )
        if not isinstance(charge_id, str) or not charge_id:
            return "ignored", None, "no charge to read"
        pi = event.object.get("payment_intent")
        account = purchases.sync_refunds(
            session, gateway, charge_id, pi if isinstance(pi, str) else None, policy
        )
        return ("processed", account, None) if account else ("ignored", None, "not a top-up")
    if event.type == "payment_intent.succeeded":
        intent = payment_intent_from(event.object)
        if autotopup.ATTEMPT_METADATA_KEY not in intent.metadata:
            return "ignored", None, "not an auto top-up (top-ups credit on checkout events)"
        payment = rules.payment_from_intent(intent, gateway.config.currency)
        return _auto_topup_paid(session, intent.metadata, payment, policy)
    if event.type == "payment_intent.payment_failed":
        intent = payment_intent_from(event.object)
        error = event.object.get("last_payment_error") or {}
        why = str(error.get("message") or error.get("code") or "payment failed")
        if autotopup.payment_failed_later(session, intent.metadata, intent.id, why):
            return "processed", intent.metadata.get(ACCOUNT_METADATA_KEY), "failure recorded"
        return "ignored", None, "not an auto top-up"
    return "ignored", None, "event type not handled"


def _auto_topup_paid(
    session: Session, metadata: Mapping[str, str], payment: Payment, policy: BalancePolicy
) -> tuple[Done, str | None, str | None]:
    settled = autotopup.settle_paid(
        session, metadata[autotopup.ATTEMPT_METADATA_KEY], payment.account_owner_id,
        payment.payment_intent_id, rules.to_minor(payment.amount, payment.currency),
        payment.currency, policy,
    )
    return "processed", payment.account_owner_id, "auto top-up credited" if settled else (
        "auto top-up already settled")

