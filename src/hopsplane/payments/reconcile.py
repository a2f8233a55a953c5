"""Compare what Stripe was paid, refunded and disputed with what the ledger credited.

Stripe is the source of truth for money that moved; the ledger must have one purchase per
succeeded top-up payment and refunds summing to the payment's refunded amount. With
``fix=True`` the missing entries are posted through the same functions the webhook uses
(:func:`~hopsplane.payments.service.fulfil_payment`,
:func:`~hopsplane.payments.service.sync_refunds` and
:func:`~hopsplane.payments.disputes.sync_dispute`), so a fix and a late webhook can never
both credit. Disputes: every dispute of a top-up that withdrew funds has its ``dispute``
entry, and every won one its ``dispute_reversal``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.schemas import BalancePolicy
from hopsplane.errors import AppError, NotFound, Unavailable
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    ChargeState,
    DisputeState,
    StripeGateway,
)
from hopsplane.payments import disputes, rules, service
from hopsplane.payments import repository as repo
from hopsplane.payments.schemas import Discrepancy, ReconcileReport
from hopsplane.payments.service import NO_POLICY


def reconcile(
    session: Session,
    gateway: StripeGateway,
    *,
    since: datetime | None,
    fix: bool,
    policy: BalancePolicy = NO_POLICY,
) -> ReconcileReport:
    report = ReconcileReport()
    paid: set[str] = set()
    for charge in gateway.list_charges(since):
        report.charges_seen += 1
        if not (charge.paid and charge.status == "succeeded" and charge.payment_intent_id):
            continue
        paid.add(charge.payment_intent_id)
        intent = charge.payment_intent or gateway.retrieve_payment_intent(
            charge.payment_intent_id
        )
        if ACCOUNT_METADATA_KEY not in intent.metadata:
            continue  # not a hopsplane top-up (another product on the same Stripe account)
        report.payments_checked += 1
        for found in _check(session, gateway, charge):
            if fix and found.kind in ("missing_purchase", "missing_refund"):
                _fix(session, gateway, charge, found, policy)
            report.discrepancies.append(found)
    report.discrepancies += _credited_but_not_paid(session, gateway, since, paid)
    for dispute in gateway.list_disputes(since):
        report.disputes_seen += 1
        report.discrepancies += _check_dispute(session, gateway, dispute, fix, policy)
    return report


def _check_dispute(session: Session, gateway: StripeGateway, dispute: DisputeState, fix: bool,
                   policy: BalancePolicy) -> list[Discrepancy]:
    """A dispute of a top-up whose withdrawal (or, won, reinstatement) the ledger lacks;
    with ``fix``, posted through the webhook's own :func:`disputes.sync_dispute`."""
    withdrawn, reinstated = rules.dispute_entries_due(dispute.status)
    if not withdrawn:
        return []
    pi = dispute.payment_intent_id or gateway.retrieve_charge(dispute.charge_id).payment_intent_id
    if not pi:
        return []
    intent = gateway.retrieve_payment_intent(pi)
    account = intent.metadata.get(ACCOUNT_METADATA_KEY)
    if account is None:
        return []  # not a hopsplane top-up
    has_dispute, has_reversal = disputes.ledger_state(session, dispute.id)
    amount = rules.from_minor(dispute.amount, dispute.currency)
    found = []
    if not has_dispute:
        found.append(Discrepancy("missing_dispute", pi, account, amount,
                                 f"dispute {dispute.id} ({dispute.status}) not in the ledger"))
    if reinstated and not has_reversal:
        found.append(Discrepancy("missing_dispute_reversal", pi, account, amount,
                                 f"dispute {dispute.id} won, its reversal not in the ledger"))
    if fix and found:
        try:
            with session.begin_nested():
                disputes.sync_dispute(session, gateway, dispute.id, policy)
            for d in found:
                d.fixed = True
        except Unavailable:
            raise
        except AppError as exc:
            for d in found:
                d.fix_error = exc.message
    return found


def _credited_but_not_paid(
    session: Session, gateway: StripeGateway, since: datetime | None, paid: set[str]
) -> list[Discrepancy]:
    """The other direction: purchases in the ledger whose payment Stripe does not show as
    succeeded (a payment made before ``since`` but credited after it is looked up and
    passes)."""
    found = []
    for entry in credits.stripe_purchases(session, since):
        pi = entry.stripe_payment_intent_id
        if pi is None or pi in paid:
            continue
        try:
            intent = gateway.retrieve_payment_intent(pi)
        except NotFound:
            found.append(Discrepancy("unknown_to_stripe", pi, entry.account_owner_id,
                                     entry.amount, f"credited, but Stripe ({gateway.mode} mode) "
                                     "has no such payment"))
            continue
        if intent.status != "succeeded":
            found.append(Discrepancy("not_succeeded_in_stripe", pi, entry.account_owner_id,
                                     entry.amount, f"credited, but the payment is {intent.status}"))
    return found


def _check(session: Session, gateway: StripeGateway, charge: ChargeState) -> list[Discrepancy]:
    pi = charge.payment_intent_id
    assert pi is not None
    intent = charge.payment_intent or gateway.retrieve_payment_intent(pi)
    account = intent.metadata.get(ACCOUNT_METADATA_KEY)
    try:
        payment = rules.payment_from_intent(intent, gateway.config.currency)
    except AppError as exc:
        return [Discrepancy("invalid_payment", pi, account, rules.from_minor(charge.amount,
                            charge.currency), exc.message)]
    purchase = credits.purchase_for_payment_intent(session, pi)
    if purchase is None:
        found = [Discrepancy("missing_purchase", pi, account, payment.amount,
                             "paid in Stripe, not credited")]
        if charge.amount_refunded:
            refunded = rules.from_minor(charge.amount_refunded, charge.currency)
            found.append(Discrepancy("missing_refund", pi, account, refunded,
                                     "refunded in Stripe, not in the ledger"))
        return found
    found = []
    if purchase.amount != payment.amount:
        found.append(Discrepancy("amount_differs", pi, account, payment.amount,
                                 f"ledger credited {purchase.amount}"))
    due = rules.refund_due(charge.amount_refunded, credits.refunded_amount(session, purchase.id),
                           charge.currency)
    if due > 0:
        found.append(Discrepancy("missing_refund", pi, account, due,
                                 "refunded in Stripe, not in the ledger"))
    elif due < 0:
        found.append(Discrepancy("ledger_refunded_more", pi, account, -due,
                                 "the ledger refunded more than Stripe did"))
    return found


def _fix(session: Session, gateway: StripeGateway, charge: ChargeState,
         found: Discrepancy, policy: BalancePolicy) -> None:
    try:
        with session.begin_nested():
            if found.kind == "missing_purchase":
                repo.lock_payment(session, found.payment_intent_id)
                intent = charge.payment_intent or gateway.retrieve_payment_intent(
                    found.payment_intent_id)
                service.fulfil_payment(
                    session, rules.payment_from_intent(intent, gateway.config.currency), policy)
            else:
                service.sync_refunds(
                    session, gateway, charge.id, charge.payment_intent_id, policy)
        found.fixed = True
    except Unavailable:
        raise
    except AppError as exc:
        found.fix_error = exc.message
