"""Pure rules of buying credits (no I/O): amounts, keys, and what an event means."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from hopsplane.errors import Invalid
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    CheckoutSession,
    PaymentIntentState,
)
from hopsplane.money import parse_amount
from hopsplane.payments.schemas import Payment

# Stripe's zero-decimal currencies: amounts are sent in whole units, not hundredths.
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
})

PURCHASE_EVENTS = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
REFUND_EVENTS = frozenset(
    {"charge.refunded", "charge.refund.updated", "refund.created", "refund.updated",
     "refund.failed"}
)


DISPUTE_EVENTS = frozenset({
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
    "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
})
"""Every event about a dispute: each makes the ledger follow the dispute as Stripe has it
now (read back from Stripe), so their order and number do not matter."""

DISPUTE_WITHDRAWN = frozenset({"needs_response", "under_review", "won", "lost"})
"""Statuses of a chargeback: Stripe withdrew the disputed amount when it was opened. The
``warning_*`` statuses are inquiries (no funds withdrawn) and ``prevented`` disputes never
withdrew anything, so neither posts a ``dispute`` entry. (Stripe docs, "Disputes": "Stripe
debits the disputed amount from your balance" for chargebacks; inquiries "don't have
funds withdrawn".)"""

DISPUTE_REINSTATED = frozenset({"won"})
"""A dispute closed in the merchant's favour: Stripe returns the funds
(``charge.dispute.funds_reinstated``), and the ledger posts a ``dispute_reversal``."""


def dispute_entries_due(status: str) -> tuple[bool, bool]:
    """(a ``dispute`` entry is due, a ``dispute_reversal`` is due) for a dispute status."""
    return status in DISPUTE_WITHDRAWN, status in DISPUTE_REINSTATED


def _scale(currency: str) -> Decimal:
    return Decimal(1) if currency.lower() in ZERO_DECIMAL else Decimal(100)


def to_minor(amount: Decimal, currency: str) -> int:
    minor = amount * _scale(currency)
    if minor != minor.to_integral_value():
        raise Invalid(f"{amount} {currency.upper()} is not a whole number of minor units")
    return int(minor)


def from_minor(minor: int, currency: str) -> Decimal:
    return (Decimal(minor) / _scale(currency)).quantize(Decimal("0.01"))


def validate_topup(raw: object, minimum: Decimal, maximum: Decimal, currency: str) -> Decimal:
    """The configured range is checked by the parser, before anything else is done."""
    amount = parse_amount(raw, minimum=minimum, maximum=maximum)
    to_minor(amount, currency)
    return amount


def account_from(metadata: Mapping[str, str], client_reference_id: str | None) -> str:
    from_metadata = metadata.get(ACCOUNT_METADATA_KEY)
    if from_metadata and client_reference_id and from_metadata != client_reference_id:
        raise Invalid(
            f"the payment names two accounts ({from_metadata!r} in metadata, "
            f"{client_reference_id!r} as client_reference_id)"
        )
    account = from_metadata or client_reference_id
    if not account:
        raise Invalid("the payment does not name a hopsplane account")
    return account


def payment_from_checkout(checkout: CheckoutSession, currency: str) -> Payment | None:
    """The payment a Checkout Session stands for, or None while it is not paid yet (an
    asynchronous method such as a bank debit completes the session unpaid)."""
    if checkout.mode != "payment":
        raise Invalid(f"checkout session {checkout.id} is not a one-time payment")
    if checkout.payment_status != "paid":
        return None
    if not checkout.payment_intent_id or checkout.amount_total is None or not checkout.currency:
        raise Invalid(f"paid checkout session {checkout.id} lacks its payment intent or amount")
    return _payment(
        account_from(checkout.metadata, checkout.client_reference_id),
        checkout.payment_intent_id, checkout.amount_total, checkout.currency, currency,
    )


def payment_from_intent(intent: PaymentIntentState, currency: str) -> Payment:
    if intent.status != "succeeded":
        raise Invalid(f"payment intent {intent.id} has not succeeded (status {intent.status})")
    received = intent.amount_received if intent.amount_received is not None else intent.amount
    return _payment(
        account_from(intent.metadata, None), intent.id, received, intent.currency, currency
    )


def _payment(account_id: str, pi: str, minor: int, paid_in: str, expected: str) -> Payment:
    if paid_in.lower() != expected.lower():
        raise Invalid(f"payment {pi} is in {paid_in.upper()}, credits are sold in "
                      f"{expected.upper()}")
    if minor <= 0:
        raise Invalid(f"payment {pi} has no amount")
    return Payment(account_id, pi, from_minor(minor, expected), expected.lower())


def refund_due(stripe_refunded_minor: int, ledger_refunded: Decimal, currency: str) -> Decimal:
    """What the ledger still has to refund (zero when it is up to date, negative when it
    refunded more than Stripe says, which a human must look at)."""
    return from_minor(stripe_refunded_minor, currency) - ledger_refunded
