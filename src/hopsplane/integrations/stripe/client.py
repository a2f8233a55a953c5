"""The real Stripe client: the official ``stripe`` library, built from Settings.

Every call goes through one ``stripe.StripeClient`` (explicit api key and base address, no
module globals). Responses are turned into the plain values of
:mod:`hopsplane.integrations.stripe.types` right here, so nothing else imports ``stripe``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import stripe
import structlog

from hopsplane.errors import AppError, Invalid, NotFound, Unauthorized, Unavailable
from hopsplane.integrations.stripe.parse import (
    charge_from,
    checkout_session_from,
    dispute_from,
    invoice_from,
    parse_event,
    payment_intent_from,
    setup_intent_from,
    to_dict,
)
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    WEBHOOK_TOLERANCE_SECONDS,
    ChargeOutcome,
    ChargeState,
    CheckoutRequest,
    CheckoutSession,
    CheckoutSessions,
    DisputeState,
    InvoiceState,
    Mode,
    OffSessionCharge,
    PaymentIntentState,
    SetupCheckoutRequest,
    SetupIntentState,
    StripeConfig,
    WebhookEvent,
)

log = structlog.get_logger(__name__)

_TIMEOUT_SECONDS = 10.0  # Stripe waits about as long for a webhook answer
_RETRIES = 2  # the library retries network errors and 409/429/5xx with the same key


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    options: stripe.RequestOptions = {}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


_T = TypeVar("_T")


def _read(what: str, fetch: Callable[[], Any], parse: Callable[[dict[str, Any]], _T]) -> _T:
    """One read of a Stripe object: Stripe's errors become the app's (:func:`_call_error`),
    the object is parsed into its typed state."""
    try:
        found = fetch()
    except stripe.StripeError as exc:
        raise _call_error(exc, f"reading {what}") from exc
    return parse(to_dict(found))


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
        metadata = {**request.metadata, ACCOUNT_METADATA_KEY: request.account_owner_id}
        options = _options(request.idempotency_key)
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

    def create_setup(self, request: SetupCheckoutRequest) -> CheckoutSession:
        """Checkout in ``setup`` mode: the customer saves a card for off-session use
        (https://docs.stripe.com/payments/save-and-reuse?platform=checkout: ``mode=setup``,
        ``currency`` and ``customer``; the SetupIntent's ``usage`` is ``off_session``)."""
        metadata = {ACCOUNT_METADATA_KEY: request.account_owner_id}
        options = _options(request.idempotency_key)
        try:
            created = self._client.v1.checkout.sessions.create(
                params={
                    "mode": "setup",
                    "currency": request.currency,
                    "customer": request.customer_id,
                    "client_reference_id": request.account_owner_id,
                    "metadata": metadata,
                    "setup_intent_data": {"metadata": metadata},
                    "success_url": request.success_url,
                    "cancel_url": request.cancel_url,
                },
                options=options,
            )
        except stripe.StripeError as exc:
            raise _call_error(exc, "creating a card setup session") from exc
        return checkout_session_from(to_dict(created))

    def retrieve(self, session_id: str) -> CheckoutSession:
        try:
            found = self._client.v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading checkout session {session_id}") from exc
        return checkout_session_from(to_dict(found))

    def list_for_customer(self, customer_id: str) -> list[CheckoutSession]:
        """Every Checkout Session of a customer, newest first ("List all Checkout
        Sessions", ``customer`` filter)."""
        try:
            found = self._client.v1.checkout.sessions.list(
                params={"customer": customer_id, "limit": 100})
            return [checkout_session_from(to_dict(cs)) for cs in found.auto_paging_iter()]
        except stripe.StripeError as exc:
            raise _call_error(exc, f"listing the checkout sessions of {customer_id}") from exc

    def expire(self, session_id: str) -> CheckoutSession:
        """Expire an open Checkout Session: the customer can no longer pay it ("Expire a
        Checkout Session"; Stripe refuses one that is not ``open``)."""
        try:
            expired = self._client.v1.checkout.sessions.expire(session_id)
        except stripe.StripeError as exc:
            raise _call_error(exc, f"expiring checkout session {session_id}") from exc
        return checkout_session_from(to_dict(expired))


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
        if signature_header is not None and not signature_header.isascii():
            # Stripe's header is ASCII (t=..., v1=hex); the library would compare a
            # non-ASCII string with compare_digest, a TypeError (a 500).
            raise Unauthorized("Stripe signature refused: the header is not ASCII")
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

    def checkout_sessions_of(self, customer_id: str) -> list[CheckoutSession]:
        return self._checkout.list_for_customer(customer_id)

    def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._checkout.expire(session_id)

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._checkout.retrieve(session_id)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentState:
        return _read(
            f"payment intent {payment_intent_id}",
            lambda: self._client.v1.payment_intents.retrieve(payment_intent_id),
            payment_intent_from,
        )

    def retrieve_charge(self, charge_id: str) -> ChargeState:
        return _read(
            f"charge {charge_id}",
            lambda: self._client.v1.charges.retrieve(charge_id),
            charge_from,
        )

    def create_setup_session(self, request: SetupCheckoutRequest) -> CheckoutSession:
        return self._checkout.create_setup(request)

    def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentState:
        return _read(
            f"setup intent {setup_intent_id}",
            lambda: self._client.v1.setup_intents.retrieve(setup_intent_id),
            setup_intent_from,
        )

    def describe_card(self, payment_method_id: str) -> str:
        try:
            pm = to_dict(self._client.v1.payment_methods.retrieve(payment_method_id))
        except stripe.StripeError as exc:
            raise _call_error(exc, f"reading payment method {payment_method_id}") from exc
        card = pm.get("card") or {}
        brand = str(card.get("brand") or pm.get("type") or "card")
        last4 = card.get("last4")
        return f"{brand} ending {last4}" if last4 else brand

    def detach_payment_method(self, payment_method_id: str) -> None:
        try:
            self._client.v1.payment_methods.detach(payment_method_id)
        except stripe.StripeError as exc:
            if exc.http_status == 404:
                return  # already gone: what we wanted
            raise _call_error(exc, f"removing payment method {payment_method_id}") from exc

    def charge_off_session(self, charge: OffSessionCharge) -> ChargeOutcome:
        """``POST /v1/payment_intents`` with ``off_session=true, confirm=true``
        (https://docs.stripe.com/payments/save-and-reuse, "Charge the saved payment method
        later"). A failed attempt answers HTTP 402 with a ``card_error`` whose ``code`` is
        ``authentication_required`` (the customer must come back, the PaymentIntent is left
        in ``requires_payment_method``:
        https://support.stripe.com/questions/manual-confirmation-for-off-session-payments-requiring-strong-customer-authentication-sca)
        or ``card_declined`` with a ``decline_code``; the error carries the PaymentIntent."""
        try:
            created = self._client.v1.payment_intents.create(
                params={
                    "amount": charge.amount_minor,
                    "currency": charge.currency,
                    "customer": charge.customer_id,
                    "payment_method": charge.payment_method_id,
                    "off_session": True,
                    "confirm": True,
                    "metadata": dict(charge.metadata),
                },
                options={"idempotency_key": charge.idempotency_key},
            )
        except stripe.CardError as exc:
            body: dict[str, Any] = exc.json_body if isinstance(exc.json_body, dict) else {}
            error: dict[str, Any] = body.get("error") or {}
            intent = error.get("payment_intent") or {}
            code = exc.code or error.get("code")
            return ChargeOutcome(
                status="requires_action" if code == "authentication_required" else "declined",
                payment_intent_id=intent.get("id") if isinstance(intent, dict) else None,
                amount_minor=charge.amount_minor,
                currency=charge.currency,
                code=code,
                decline_code=error.get("decline_code"),
                message=exc.user_message or str(exc),
            )
        except stripe.StripeError as exc:
            raise _call_error(exc, "charging a saved card") from exc
        intent = payment_intent_from(to_dict(created))
        minor = intent.amount_received or intent.amount
        if intent.status == "succeeded":
            return ChargeOutcome("succeeded", intent.id, minor, intent.currency)
        if intent.status == "processing":
            return ChargeOutcome("processing", intent.id, minor, intent.currency)
        if intent.status == "requires_action":
            return ChargeOutcome("requires_action", intent.id, intent.amount, intent.currency,
                                 code="authentication_required")
        return ChargeOutcome("declined", intent.id, intent.amount, intent.currency,
                             code=intent.status, message=f"payment intent is {intent.status}")

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        return _read(
            f"invoice {invoice_id}",
            lambda: self._client.v1.invoices.retrieve(invoice_id),
            invoice_from,
        )

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

    def retrieve_dispute(self, dispute_id: str) -> DisputeState:
        return _read(
            f"dispute {dispute_id}",
            lambda: self._client.v1.disputes.retrieve(dispute_id),
            dispute_from,
        )

    def list_disputes(self, since: datetime | None) -> Iterator[DisputeState]:
        params: stripe.params.DisputeListParams = {"limit": 100}
        if since is not None:
            params["created"] = {"gt": int(since.timestamp()) - 1}
        try:
            for dispute in self._client.v1.disputes.list(params=params).auto_paging_iter():
                yield dispute_from(to_dict(dispute))
        except stripe.StripeError as exc:
            raise _call_error(exc, "listing disputes") from exc
