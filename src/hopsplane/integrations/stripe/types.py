"""What hopsplane needs from Stripe, as plain typed values and Protocols.

The domain (``hopsplane.payments``) only sees these shapes, never a ``stripe`` object, so
the real client and any stand-in are interchangeable and the rules stay testable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

Mode = Literal["test", "live"]

WEBHOOK_TOLERANCE_SECONDS = 300
"""Signed events older than this are refused (Stripe's own default, 5 minutes)."""

ACCOUNT_METADATA_KEY = "hopsplane_account"
"""Metadata key naming the account owner on Checkout Sessions and their PaymentIntents."""


def mode_of_key(secret_key: str) -> Mode:
    """Test or live, from the shape of the key (sk_test_/rk_test_ vs sk_live_/rk_live_)."""
    return "live" if secret_key.startswith(("sk_live_", "rk_live_")) else "test"


@dataclass(frozen=True, slots=True)
class StripeConfig:
    mode: Mode
    currency: str
    min_topup: Decimal
    max_topup: Decimal
    success_url: str
    cancel_url: str


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    customer_id: str
    account_owner_id: str
    amount_minor: int
    currency: str
    success_url: str
    cancel_url: str
    description: str
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    """More metadata for the session and its PaymentIntent (besides the account)."""


@dataclass(frozen=True, slots=True)
class SetupCheckoutRequest:
    """A Checkout Session in ``setup`` mode: the customer saves a card for later
    off-session charges, nothing is charged now."""

    customer_id: str
    account_owner_id: str
    currency: str
    success_url: str
    cancel_url: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class SetupIntentState:
    id: str
    status: str  # succeeded | requires_action | requires_payment_method | canceled | ...
    payment_method_id: str | None
    customer_id: str | None


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    """An off-session PaymentIntent (``off_session=true, confirm=true``) on a saved card."""

    customer_id: str
    payment_method_id: str
    amount_minor: int
    currency: str
    metadata: Mapping[str, str]
    idempotency_key: str


ChargeStatus = Literal["succeeded", "processing", "requires_action", "declined"]


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    """What Stripe answered an off-session charge: a PaymentIntent that succeeded or is
    processing, one that needs the customer (``authentication_required``), or a card
    decline (HTTP 402 ``card_error``) with its codes."""

    status: ChargeStatus
    payment_intent_id: str | None
    amount_minor: int
    currency: str
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str | None  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    mode: str
    payment_intent_id: str | None
    client_reference_id: str | None
    metadata: Mapping[str, str]
    amount_total: int | None
    currency: str | None
    livemode: bool
    setup_intent_id: str | None = None
    invoice_id: str | None = None  # the paid invoice Checkout made (invoice_creation on)


@dataclass(frozen=True, slots=True)
class PaymentIntentState:
    id: str
    status: str
    amount: int
    amount_received: int | None
    currency: str
    metadata: Mapping[str, str]
    livemode: bool
    latest_charge_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceState:
    """A Stripe invoice as far as receipts need it. ``hosted_invoice_url`` and
    ``invoice_pdf`` are null until the invoice is finalized (Stripe API reference,
    "The Invoice object")."""

    id: str
    status: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


@dataclass(frozen=True, slots=True)
class ChargeState:
    id: str
    payment_intent_id: str | None
    amount: int
    amount_refunded: int
    currency: str
    status: str
    paid: bool
    created: datetime
    livemode: bool
    payment_intent: PaymentIntentState | None = None  # when the listing expanded it
    receipt_url: str | None = None  # Stripe's receipt page of the charge


@dataclass(frozen=True, slots=True)
class DisputeState:
    """A Stripe dispute (``dp_...``) as the API returns it. ``status`` is one of
    ``warning_needs_response``, ``warning_under_review``, ``warning_closed`` (an inquiry: no
    funds withdrawn), ``needs_response``, ``under_review``, ``won``, ``lost``, ``prevented``
    (Stripe API reference, "The Dispute object"; the status enum as the client libraries
    carry it: stripe-ruby ``Stripe::Dispute``, stripe-go ``DisputeStatus``)."""

    id: str
    charge_id: str
    payment_intent_id: str | None
    amount: int  # minor units, the disputed amount
    currency: str
    status: str
    created: datetime
    livemode: bool


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    livemode: bool
    created: datetime
    object: Mapping[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)


class CheckoutSessions(Protocol):
    """The one Stripe call localstripe does not serve: kept apart so it can be faked at its
    HTTP boundary in tests."""

    def create(self, request: CheckoutRequest) -> CheckoutSession: ...

    def create_setup(self, request: SetupCheckoutRequest) -> CheckoutSession: ...

    def retrieve(self, session_id: str) -> CheckoutSession: ...

    def list_for_customer(self, customer_id: str) -> list[CheckoutSession]: ...

    def expire(self, session_id: str) -> CheckoutSession: ...


class StripeGateway(Protocol):
    config: StripeConfig

    @property
    def mode(self) -> Mode: ...

    def verify_event(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """The event, if ``payload`` is signed with the webhook secret within the tolerance;
        raises Unauthorized otherwise, Invalid for a body that is not an event."""
        ...

    def create_customer(self, email: str, account_owner_id: str, idempotency_key: str) -> str: ...

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession: ...

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession: ...

    def checkout_sessions_of(self, customer_id: str) -> list[CheckoutSession]: ...

    def expire_checkout_session(self, session_id: str) -> CheckoutSession: ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentState: ...

    def retrieve_charge(self, charge_id: str) -> ChargeState: ...

    def create_setup_session(self, request: SetupCheckoutRequest) -> CheckoutSession: ...

    def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentState: ...

    def describe_card(self, payment_method_id: str) -> str:
        """A label for a saved card ("visa ending 4242")."""
        ...

    def detach_payment_method(self, payment_method_id: str) -> None: ...

    def charge_off_session(self, charge: OffSessionCharge) -> ChargeOutcome:
        """Create and confirm an off-session PaymentIntent. Card declines and
        ``authentication_required`` are outcomes; Stripe unreachable raises Unavailable
        (retry with the same idempotency key)."""
        ...

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState: ...

    def list_charges(self, since: datetime | None) -> Iterator[ChargeState]:
        """Every charge created at or after ``since`` (all when None), newest first, with its
        PaymentIntent expanded."""
        ...

    def retrieve_dispute(self, dispute_id: str) -> DisputeState: ...

    def list_disputes(self, since: datetime | None) -> Iterator[DisputeState]:
        """Every dispute created at or after ``since`` (all when None), newest first."""
        ...
