"""The real Stripe client: the official ``stripe`` library, built from Settings.

Every call goes through one ``stripe.StripeClient`` (explicit api key and base address, no
module globals). Responses are turned into the plain values of
:mod:`hopsplane.integrations.stripe.types` right here, so nothing else imports ``stripe``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import stripe
import structlog

from hopsplane.errors import AppError, Invalid, NotFound, Unauthorized, Unavailable
from hopsplane.integrations.stripe.parse import (
    charge_from,
    checkout_session_from,
    invoice_from,
    parse_event,
    payment_intent_from,
    to_dict,
)
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    WEBHOOK_TOLERANCE_SECONDS,
    ChargeState,
    CheckoutRequest,
    CheckoutSession,
    CheckoutSessions,
    InvoiceState,
    Mode,
    PaymentIntentState,
    StripeConfig,
    WebhookEvent,
)

log = structlog.get_logger(__name__)

_TIMEOUT_SECONDS = 10.0  # Stripe waits about as long for a webhook answer
_RETRIES = 2  # the library retries network errors and 409/429/5xx with the same key


def _call_error(exc: stripe.StripeError, what: str) -> AppError:
    """A Stripe failure as one of ours: unreachable or 5xx/429 -> Unavailable (retry later),
    a missing object -> NotFound, anything else -> Invalid with Stripe's message."""
    status = exc.http_status or 0
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or status >= 500:
        return Unavailable(f"Stripe is unavailable ({what}): {exc.user_message or exc}")
    if status == 404:
        return NotFound(f"Stripe has no such object ({what})")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return Unavailable(f"Stripe refused our credentials ({what})")
    return Invalid(f"Stripe refused {what}: {exc.user_message or exc}")


class StripeCheckoutSessions:
    """Checkout Sessions through the official client (POST/GET /v1/checkout/sessions)."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def create(self, request: CheckoutRequest) -> CheckoutSession:
        metadata = {ACCOUNT_METADATA_KEY: request.account_owner_id}
        options: stripe.RequestOptions = {}
        if request.idempotency_key:
            options["idempotency_key"] = request.idempotency_key
        try:
            created = self._client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "customer": request.customer_id,
                    "client_reference_id": request.account_owner_id,
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    # a paid invoice after the payment: the top-up's receipt (Checkout
                    # Session API: invoice_creation.enabled, payment mode only)
                    "invoice_creation": {
                        "enabled": True, "invoice_data": {"metadata": metadata},
                    },
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": request.currency,
                                "unit_amount": request.amount_minor,
                                "product_data": {"name": request.description},
                            },
                        }
                    ],
                    "success_url": request.success_url,
                    "cancel_url": request.cancel_url,
                },
                options=options,
            )
        except stripe.StripeError as exc:
            raise _call_error(exc, "creating a checkout session") from exc
        return checkout_session_from(to_dict(created))

    def retrieve(self, session_id: str) -> CheckoutSession:
        try:
            found = self._client.v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading checkout session {session_id}") from exc
        return checkout_session_from(to_dict(found))


class StripeApi:
    """:class:`~hopsplane.integrations.stripe.types.StripeGateway` on the real API."""

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str | None,
        config: StripeConfig,
        *,
        api_base: str = stripe.DEFAULT_API_BASE,
        checkout: CheckoutSessions | None = None,
    ) -> None:
        self.config = config
        self._webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base},
            max_network_retries=_RETRIES,
            http_client=stripe.HTTPXClient(timeout=_TIMEOUT_SECONDS, allow_sync_methods=True),
        )
        self._checkout = checkout or StripeCheckoutSessions(self._client)

    @property
    def mode(self) -> Mode:
        return self.config.mode

    def verify_event(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        if not self._webhook_secret:
            raise Unavailable(
                "Stripe webhooks are not configured (HOPSPLANE_STRIPE_WEBHOOK_SECRET)"
            )
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            # Stripe signs UTF-8 JSON; the library would fail decoding it (a 500).
            raise Invalid("the webhook body is not UTF-8 text, so not a Stripe event") from None
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, self._webhook_secret, WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise Unauthorized(f"Stripe signature refused: {exc.user_message or exc}") from exc
        return parse_event(payload)

    def create_customer(self, email: str, account_owner_id: str, idempotency_key: str) -> str:
        try:
            customer = self._client.v1.customers.create(
                params={"email": email, "metadata": {ACCOUNT_METADATA_KEY: account_owner_id}},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _call_error(exc, "creating a customer") from exc
        return str(customer.id)

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        return self._checkout.create(request)

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._checkout.retrieve(session_id)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentState:
        try:
            found = self._client.v1.payment_intents.retrieve(payment_intent_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading payment intent {payment_intent_id}") from exc
        return payment_intent_from(to_dict(found))

    def retrieve_charge(self, charge_id: str) -> ChargeState:
        try:
            found = self._client.v1.charges.retrieve(charge_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading charge {charge_id}") from exc
        return charge_from(to_dict(found))

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        try:
            found = self._client.v1.invoices.retrieve(invoice_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading invoice {invoice_id}") from exc
        return invoice_from(to_dict(found))

    def list_charges(self, since: datetime | None) -> Iterator[ChargeState]:
        params: stripe.params.ChargeListParams = {"limit": 100, "expand": ["data.payment_intent"]}
        if since is not None:
            # created > since - 1 s, i.e. at or after since (timestamps are whole seconds)
            params["created"] = {"gt": int(since.timestamp()) - 1}
        try:
            for charge in self._client.v1.charges.list(params=params).auto_paging_iter():
                yield charge_from(to_dict(charge))
        except stripe.StripeError as exc:
            raise _call_error(exc, "listing charges") from exc
