"""Where a ledger posting comes from. Every posting names its origin, and the ledger's
idempotency key is built from it in one place (:func:`hopsplane.credits.service.ledger_key`).

Each origin owns a namespace: its keys start with a prefix no other origin's key starts
with (and no prefix begins another), so two origins can never produce the same key. That
matters for the keys people supply (an operator's ``--key``, an admin client's
``idempotency_key``): whatever they type, it lands inside their own namespace and cannot
collide with, say, the key of a Stripe payment the webhook will post later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hopsplane.credits.rules import STRIPE_REFUND_KEY_PREFIX


@dataclass(frozen=True, slots=True)
class StripePurchase:
    """A succeeded Stripe payment: one purchase per PaymentIntent."""

    payment_intent_id: str


@dataclass(frozen=True, slots=True)
class StripeRefund:
    """Stripe's cumulative refunded amount (minor units) of a payment: two deliveries that
    see the same Stripe state post once; a later, larger refund is a new posting."""

    payment_intent_id: str
    cumulative_refunded_minor: int


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """The billing run's debit of one account's day, keyed by the day's cumulative charge
    after this debit (late usage raising it posts the difference under a new key)."""

    account_owner_id: str
    day: date
    charged_total: Decimal


@dataclass(frozen=True, slots=True)
class SuppliedKey:
    """An origin whose key a person (or their client) chose. Two origins with the same
    ``key`` are still different origins: equality includes the class."""

    key: str


class OperatorGrant(SuppliedKey):
    """A grant made with the CLI; ``key`` is the operator's ``--key`` (or a fresh one)."""

    __slots__ = ()


class OperatorRefund(SuppliedKey):
    """A refund made with the CLI; ``key`` is the operator's ``--key`` (or a fresh one)."""

    __slots__ = ()


class AdminGrant(SuppliedKey):
    """A grant by a platform admin through the API or the console (the client's key)."""

    __slots__ = ()


class AdminRefund(SuppliedKey):
    """A refund by a platform admin through the API (the client's key)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class LegacyBalance:
    """The opening entries the legacy cleanup writes (set-based, in SQL, with the same
    ``legacy:`` prefix: see hopsplane.legacy.transform)."""

    user_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class GrantExpiry:
    """The expiry of what is left of one expiring grant: once per grant."""

    grant_id: str


@dataclass(frozen=True, slots=True)
class StripeDispute:
    """A Stripe dispute (``dp_...``) of a top-up: one ``dispute`` entry per dispute."""

    dispute_id: str


@dataclass(frozen=True, slots=True)
class StripeDisputeWon:
    """A Stripe dispute closed as ``won``: one ``dispute_reversal`` entry per dispute."""

    dispute_id: str


Origin = (
    StripePurchase
    | StripeRefund
    | UsageCharge
    | OperatorGrant
    | OperatorRefund
    | AdminGrant
    | AdminRefund
    | LegacyBalance
    | GrantExpiry
    | StripeDispute
    | StripeDisputeWon
)
GrantOrigin = OperatorGrant | AdminGrant
RefundOrigin = OperatorRefund | AdminRefund

PREFIXES: dict[type[Origin], str] = {
    StripePurchase: "stripe:purchase:",
    StripeRefund: STRIPE_REFUND_KEY_PREFIX,  # the database names it too (revision 0022)
    UsageCharge: "usage:",
    OperatorGrant: "operator:grant:",
    OperatorRefund: "operator:refund:",
    AdminGrant: "admin-grant:",
    AdminRefund: "admin-refund:",
    LegacyBalance: "legacy:",
    GrantExpiry: "expiry:",
    StripeDispute: "stripe:dispute:",
    StripeDisputeWon: "stripe:dispute-won:",
}
"""The namespace of each origin. The system's prefixes (Stripe, usage, legacy) are those
the ledger has always used, so keys already posted keep deduplicating."""
