"""Stripe: a thin typed client behind a Protocol, built from Settings at start-up.

``build_stripe(settings)`` returns None when no secret key is configured (the top-up and
webhook routes then answer 503).
"""

from __future__ import annotations

import logging

from hopsplane.config import Settings
from hopsplane.integrations.stripe.client import StripeApi, StripeCheckoutSessions
from hopsplane.integrations.stripe.parse import parse_event
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    WEBHOOK_TOLERANCE_SECONDS,
    ChargeState,
    CheckoutRequest,
    CheckoutSession,
    CheckoutSessions,
    Mode,
    PaymentIntentState,
    StripeConfig,
    StripeGateway,
    WebhookEvent,
    mode_of_key,
)

SESSION_ID_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"


def config_from_settings(settings: Settings) -> StripeConfig:
    key = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else ""
    base = settings.public_url.rstrip("/")
    return StripeConfig(
        mode=mode_of_key(key),
        currency=settings.stripe_currency,
        min_topup=settings.stripe_min_topup,
        max_topup=settings.stripe_max_topup,
        success_url=f"{base}/v1/account/topups/{SESSION_ID_PLACEHOLDER}/complete",
        cancel_url=f"{base}/?topup=cancelled",
    )


def build_stripe(settings: Settings) -> StripeApi | None:
    if settings.stripe_secret_key is None:
        return None
    # The library logs every request at INFO; our own logs say what matters.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    secret = settings.stripe_webhook_secret
    return StripeApi(
        settings.stripe_secret_key.get_secret_value(),
        secret.get_secret_value() if secret else None,
        config_from_settings(settings),
        api_base=settings.stripe_api_base,
    )


__all__ = [
    "ACCOUNT_METADATA_KEY",
    "SESSION_ID_PLACEHOLDER",
    "WEBHOOK_TOLERANCE_SECONDS",
    "ChargeState",
    "CheckoutRequest",
    "CheckoutSession",
    "CheckoutSessions",
    "Mode",
    "PaymentIntentState",
    "StripeApi",
    "StripeCheckoutSessions",
    "StripeConfig",
    "StripeGateway",
    "WebhookEvent",
    "build_stripe",
    "config_from_settings",
    "mode_of_key",
    "parse_event",
]
