"""Use cases of buying credits. Functions take the session first and never commit.

Every path that credits a payment (the webhook, the success redirect, a refund that arrives
first, ``stripe reconcile --fix``) goes through :func:`fulfil_payment`, which posts the
purchase under the key ``stripe:purchase:<payment intent>``: whatever the order or number
of deliveries, a payment is credited once.

This is the core of the domain: auto top-up (:mod:`hopsplane.payments.autotopup`), disputes
and reconciliation import it, it imports none of them; Stripe's webhook events are routed in
:mod:`hopsplane.payments.webhooks`, above all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib

import structlog
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.credits import service as credits
from hopsplane.credits.origins import StripePurchase, StripeRefund
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import BalancePolicy, LedgerEntryOut, Posting
from hopsplane.errors import Conflict, Invalid, NotFound, Unavailable
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    CheckoutRequest,
    StripeGateway,
)
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.payments import receipts, rules
from hopsplane.payments import repository as repo
from hopsplane.payments.schemas import (
    FulfilResult,
    Payment,
    TopupOut,
    TopupStatusOut,
)

log = structlog.get_logger(__name__)

NO_POLICY = BalancePolicy()  # announce suspensions/resumptions at the next dispatch

PRODUCT_NAME = "hopsplane credits"


def fulfil_payment(
    session: Session, payment: Payment, policy: BalancePolicy = NO_POLICY
) -> FulfilResult:
    """Credit a succeeded payment to its account, once.

    The one place a Stripe payment becomes credit. A repeat (same payment intent) returns
    the original entry with ``created=False``. Balance enforcement (lifting a suspension
    once the balance is positive again) happens in the posting, announced through
    ``policy.hooks``.
    """
    credited = credits.purchase_for_payment_intent(session, payment.payment_intent_id)
    if credited is not None:  # wherever it went then: the account may have changed since
        return FulfilResult(credited, False)
    account = credited_account(session, payment.account_owner_id)
    moved = "" if account == payment.account_owner_id else (
        f" paid for account {payment.account_owner_id}, whose owner has joined this one")
    result = credits.post(
        session,
        Posting(
            account_owner_id=account,
            entry_type=EntryType.PURCHASE,
            amount=payment.amount,
            idempotency_key=credits.ledger_key(StripePurchase(payment.payment_intent_id)),
            description=f"Stripe top-up {payment.amount} {payment.currency.upper()}{moved}",
            stripe_payment_intent_id=payment.payment_intent_id,
        ),
        hooks=policy.hooks,
        thresholds=policy.thresholds,
    )
    if result.created:
        log.info("credits purchased", account=account, named=payment.account_owner_id,
                 amount=str(payment.amount), payment_intent=payment.payment_intent_id)
        notices.publish(session, AccountEvent(
            "topup_succeeded", account, f"topup_succeeded:{payment.payment_intent_id}",
            {"amount": payment.amount, "payment_intent": payment.payment_intent_id,
             "ledger_seq": result.entry.seq}))
    return FulfilResult(result.entry, result.created)


def as_credited(payment: Payment, credited: FulfilResult) -> Payment:
    """The payment as credited: to the account its purchase entry is on."""
    return dataclasses.replace(payment, account_owner_id=credited.entry.account_owner_id)


def credited_account(session: Session, named: str) -> str:
    """The account a payment naming ``named`` is credited to.

    ``named`` itself, always, while it is an account; and it stays one while a Checkout of
    it is open, since joining a team first expires the owner's open Checkout Sessions and
    is refused while a payment is still processing (:func:`close_checkouts`). Money that
    reaches a closed account anyway (a session opened before that rule, an asynchronous
    payment Stripe confirmed late) is never dropped: it is credited to the account its
    owner belongs to now, and the entry says for whom it was paid."""
    account = accounts.current_account_of(session, named)
    if account is None:
        raise Invalid(f"the payment names account {named!r}, which does not exist")
    return account


def close_checkouts(session: Session, gateway: StripeGateway, account_id: str) -> list[str]:
    """Before an owner's account closes (they join another account): expire its open
    Checkout Sessions, credit a paid one the ledger lacks (so the join is refused: the
    account holds credit now), and refuse (Conflict) while a payment is still processing.
    Returns the sessions expired. The caller holds the user's row lock, which
    :func:`start_topup` waits for, so no Checkout opens meanwhile; Stripe unreachable is
    Unavailable (503): the join waits rather than risk a payment to a closed account."""
    _, customer = repo.customer_of(session, account_id, gateway.mode)
    if not customer:
        return []  # never opened a Checkout in this mode
    expired = []
    for checkout in gateway.checkout_sessions_of(customer):
        if checkout.status == "open":
            try:
                gateway.expire_checkout_session(checkout.id)
            except Invalid:  # Stripe refuses: it was completed a moment ago
                checkout = gateway.retrieve_checkout_session(checkout.id)
            else:
                expired.append(checkout.id)
                continue
        if checkout.mode != "payment" or checkout.status != "complete":
            continue
        if checkout.payment_status == "unpaid":
            raise Conflict(
                f"a payment of yours is still being processed by Stripe (checkout session "
                f"{checkout.id}): join once it has completed, so that its credit has an "
                "account to go to"
            )
        payment = rules.payment_from_checkout(checkout, gateway.config.currency)
        if payment is not None and payment.account_owner_id == account_id:
            fulfil_payment(session, payment)  # the ledger then holds credit: join refused
    if expired:
        log.info("checkout sessions expired before the account closed", account=account_id,
                 sessions=expired)
    return expired


def ensure_customer(session: Session, gateway: StripeGateway, account_id: str) -> str:
    """The account's Stripe customer in the configured mode, created on first use."""
    email, customer = repo.customer_of(session, account_id, gateway.mode)
    if customer:
        return customer
    created = gateway.create_customer(
        email, account_id, idempotency_key=f"hopsplane:customer:{account_id}:{gateway.mode}"
    )
    return repo.set_customer(session, account_id, gateway.mode, created)


def start_topup(
    session: Session,
    gateway: StripeGateway,
    account_id: str,
    amount: object,
    *,
    idempotency_key: str | None = None,
) -> TopupOut:
    """A Stripe Checkout Session for buying ``amount`` credits. Works whatever the balance:
    a suspended account tops up to be resumed."""
    config = gateway.config
    value = rules.validate_topup(amount, config.min_topup, config.max_topup, config.currency)
    if not repo.hold_owner(session, account_id):  # joined a team while this request waited
        raise Conflict(f"{account_id!r} has joined another account: buy credits there")
    customer = ensure_customer(session, gateway, account_id)
    checkout = gateway.create_checkout_session(
        CheckoutRequest(
            customer_id=customer,
            account_owner_id=account_id,
            amount_minor=rules.to_minor(value, config.currency),
            currency=config.currency,
            success_url=config.success_url,
            cancel_url=config.cancel_url,
            description=PRODUCT_NAME,
            idempotency_key=_stripe_key("topup", account_id, idempotency_key),
        )
    )
    if not checkout.url:
        raise Unavailable(f"Stripe returned checkout session {checkout.id} without a URL")
    return TopupOut(session_id=checkout.id, url=checkout.url, amount=value,
                    currency=config.currency)


def _stripe_key(kind: str, account_id: str, client_key: str | None) -> str | None:
    """A client's Idempotency-Key, scoped to the account, within Stripe's 255 characters."""
    if not client_key:
        return None
    digest = hashlib.sha256(f"{account_id}\n{client_key}".encode()).hexdigest()
    return f"hopsplane:{kind}:{digest}"


def complete_topup(
    session: Session,
    gateway: StripeGateway,
    account_id: str,
    session_id: str,
    policy: BalancePolicy = NO_POLICY,
    *,
    user_id: str | None = None,
    sees_balance: bool = True,
) -> TopupStatusOut:
    """The success redirect: read the Checkout Session from Stripe and, when it is paid,
    credit it now (the same idempotent fulfilment as the webhook).

    The caller may complete a session naming ``account_id`` (their account now) or
    ``user_id`` (their own account when they opened it, before joining a team): the buyer
    always gets an answer, and the payment goes where :func:`credited_account` says. The
    balance is shown only when it is the caller's to see (``sees_balance``) and of the
    account credited."""
    if not session_id.startswith("cs_"):
        raise NotFound(f"no checkout session {session_id!r}")
    checkout = gateway.retrieve_checkout_session(session_id)
    owner = rules.account_from(checkout.metadata, checkout.client_reference_id)
    if owner not in (account_id, user_id):  # as an unknown session: existence is not told
        raise NotFound(f"no checkout session {session_id!r}")
    payment = rules.payment_from_checkout(checkout, gateway.config.currency)
    if payment is not None:
        repo.lock_payment(session, payment.payment_intent_id)
    credited = fulfil_payment(session, payment, policy) if payment else None
    if payment is not None and credited is not None:
        receipts.record_from_checkout(session, gateway, checkout, as_credited(payment, credited))
    into = credited.entry.account_owner_id if credited is not None else account_id
    return TopupStatusOut(
        session_id=checkout.id,
        payment_status=checkout.payment_status,
        credited=credited is not None,
        amount=payment.amount if payment else None,
        balance=credits.balance(session, into) if sees_balance and into == account_id
        else None,
    )


def sync_refunds(
    session: Session,
    gateway: StripeGateway,
    charge_id: str,
    payment_intent_id: str | None = None,
    policy: BalancePolicy = NO_POLICY,
) -> str | None:
    """Bring the ledger's refunds of a charge's payment up to what Stripe says now.

    Takes a lock on the payment, then reads the charge from Stripe (its cumulative
    ``amount_refunded``): a transaction that got the lock after another one reads Stripe
    after it, so it never acts on an older state. Credits the purchase first if the ledger
    does not have it yet (a refund event that overtook the purchase), then posts the
    difference as one refund. Returns the account, or None when the charge is not a
    hopsplane top-up (no payment intent, or one without our account metadata).
    """
    pi = payment_intent_id or gateway.retrieve_charge(charge_id).payment_intent_id
    if not pi:
        return None
    repo.lock_payment(session, pi)
    charge = gateway.retrieve_charge(charge_id)
    if charge.payment_intent_id != pi:
        raise Invalid(f"charge {charge_id} belongs to {charge.payment_intent_id}, not {pi}")
    purchase = purchase_of(session, gateway, pi, policy)
    if purchase is None:
        return None
    due = rules.refund_due(
        charge.amount_refunded, credits.refunded_amount(session, purchase.id), charge.currency
    )
    if due < 0:
        raise Invalid(
            f"the ledger refunded {-due} more of {charge.payment_intent_id} than Stripe did"
        )
    if due > 0:
        credits.post(
            session,
            Posting(
                account_owner_id=purchase.account_owner_id,
                entry_type=EntryType.REFUND,
                amount=-due,
                idempotency_key=credits.ledger_key(
                    StripeRefund(charge.payment_intent_id, charge.amount_refunded)
                ),
                description=f"Stripe refund of {charge.payment_intent_id}",
                stripe_payment_intent_id=charge.payment_intent_id,
                refund_of=purchase.id,
            ),
            hooks=policy.hooks,
            thresholds=policy.thresholds,
        )
    return purchase.account_owner_id


def purchase_of(
    session: Session, gateway: StripeGateway, pi: str, policy: BalancePolicy
) -> LedgerEntryOut | None:
    """The ledger's purchase of a payment, credited first from the PaymentIntent when the
    purchase event has not been processed yet; None when the payment is not a top-up.
    The caller holds the payment's lock."""
    purchase = credits.purchase_for_payment_intent(session, pi)
    if purchase is not None:
        return purchase
    intent = gateway.retrieve_payment_intent(pi)
    if ACCOUNT_METADATA_KEY not in intent.metadata:
        return None
    payment = rules.payment_from_intent(intent, gateway.config.currency)
    return fulfil_payment(session, payment, policy).entry
