"""Stripe JSON (API responses, event bodies) into the plain values of ``types``.

No ``stripe`` import: the domain uses these to read event payloads too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hopsplane.errors import Invalid
from hopsplane.integrations.stripe.types import (
    ChargeState,
    CheckoutSession,
    DisputeState,
    InvoiceState,
    PaymentIntentState,
    SetupIntentState,
    WebhookEvent,
)


def to_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object (or any mapping) as a plain dict."""
    as_dict = getattr(obj, "to_dict", None)
    if callable(as_dict):
        result = as_dict()
        return dict(result) if isinstance(result, Mapping) else {}
    return dict(obj) if isinstance(obj, Mapping) else {}


def _id_of(value: Any) -> str | None:
    """An expandable field: either an id or the expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return str(to_dict(value).get("id")) if to_dict(value).get("id") else None


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in to_dict(value).items()}


def checkout_session_from(data: Mapping[str, Any]) -> CheckoutSession:
    """A Checkout Session from its JSON (an API response or an event's data.object)."""
    return CheckoutSession(
        id=str(data["id"]),
        url=data.get("url"),
        status=data.get("status"),
        payment_status=str(data.get("payment_status") or "unpaid"),
        mode=str(data.get("mode") or ""),
        payment_intent_id=_id_of(data.get("payment_intent")),
        client_reference_id=data.get("client_reference_id"),
        metadata=_metadata(data.get("metadata")),
        amount_total=data.get("amount_total"),
        currency=data.get("currency"),
        livemode=bool(data.get("livemode")),
        setup_intent_id=_id_of(data.get("setup_intent")),
        invoice_id=_id_of(data.get("invoice")),
    )


def payment_intent_from(data: Mapping[str, Any]) -> PaymentIntentState:
    return PaymentIntentState(
        id=str(data["id"]),
        status=str(data.get("status")),
        amount=int(data.get("amount") or 0),
        amount_received=data.get("amount_received"),
        currency=str(data.get("currency") or ""),
        metadata=_metadata(data.get("metadata")),
        livemode=bool(data.get("livemode")),
        latest_charge_id=_id_of(data.get("latest_charge")),
    )


def invoice_from(data: Mapping[str, Any]) -> InvoiceState:
    return InvoiceState(
        id=str(data["id"]),
        status=data.get("status"),
        hosted_invoice_url=data.get("hosted_invoice_url"),
        invoice_pdf=data.get("invoice_pdf"),
    )


def setup_intent_from(data: Mapping[str, Any]) -> SetupIntentState:
    return SetupIntentState(
        id=str(data["id"]),
        status=str(data.get("status")),
        payment_method_id=_id_of(data.get("payment_method")),
        customer_id=_id_of(data.get("customer")),
    )


def charge_from(data: Mapping[str, Any]) -> ChargeState:
    expanded = data.get("payment_intent")
    return ChargeState(
        id=str(data["id"]),
        payment_intent_id=_id_of(expanded),
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=str(data.get("currency") or ""),
        status=str(data.get("status")),
        paid=bool(data.get("paid")),
        created=datetime.fromtimestamp(int(data.get("created") or 0), UTC),
        livemode=bool(data.get("livemode")),
        payment_intent=payment_intent_from(expanded) if isinstance(expanded, Mapping) else None,
        receipt_url=data.get("receipt_url"),
    )


def dispute_from(data: Mapping[str, Any]) -> DisputeState:
    """A dispute object (``"object": "dispute"``): ``charge`` and ``payment_intent`` are
    expandable ids, ``amount`` is in minor units."""
    charge = _id_of(data.get("charge"))
    if not data.get("id") or not charge:
        raise Invalid("the dispute has no id or no charge")
    return DisputeState(
        id=str(data["id"]),
        charge_id=charge,
        payment_intent_id=_id_of(data.get("payment_intent")),
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or ""),
        status=str(data.get("status") or ""),
        created=datetime.fromtimestamp(int(data.get("created") or 0), UTC),
        livemode=bool(data.get("livemode")),
    )


def parse_event(payload: bytes) -> WebhookEvent:
    """The fields hopsplane uses from an event body (already verified)."""
    try:
        data = json.loads(payload)
        obj = data["data"]["object"]
        if not isinstance(obj, dict) or data.get("object") != "event":
            raise TypeError("not an event")
        return WebhookEvent(
            id=str(data["id"]),
            type=str(data["type"]),
            livemode=bool(data["livemode"]),
            created=datetime.fromtimestamp(int(data["created"]), UTC),
            object=obj,
            payload=data,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"the body is not a Stripe event: {exc}") from exc
