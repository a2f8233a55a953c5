"""The real stripe client against local servers speaking Stripe's protocol."""

import time

import pytest

from hopsplane.errors import Invalid, NotFound, Unauthorized
from hopsplane.integrations.stripe import CheckoutRequest, StripeApi
from tests.payments.fakes import WEBHOOK_SECRET, StripeFront, sign, stripe_event


def test_customers_checkout_and_payments_round_trip(gateway: StripeApi,
                                                     stripe_front: StripeFront) -> None:
    customer = gateway.create_customer("a@example.com", "auth0|a", "k-a")
    assert customer.startswith("cus_")
    cs = gateway.create_checkout_session(CheckoutRequest(
        customer_id=customer, account_owner_id="auth0|a", amount_minor=2500, currency="usd",
        success_url="https://x.test/ok/{CHECKOUT_SESSION_ID}", cancel_url="https://x.test/no",
        description="hopsplane credits",
    ))
    assert cs.url and cs.payment_status == "unpaid" and cs.amount_total == 2500
    assert cs.client_reference_id == "auth0|a" and cs.metadata["hopsplane_account"] == "auth0|a"
    paid = stripe_front.pay(cs.id)
    again = gateway.retrieve_checkout_session(cs.id)
    assert again.payment_status == "paid" and again.payment_intent_id == paid["payment_intent"]
    pi = gateway.retrieve_payment_intent(paid["payment_intent"])
    assert pi.status == "succeeded" and pi.amount == 2500
    assert pi.metadata["hopsplane_account"] == "auth0|a"
    charge = stripe_front.refund(pi.id, 1000)
    state = gateway.retrieve_charge(charge["id"])
    assert state.payment_intent_id == pi.id and state.amount_refunded == 1000
    listed = [c for c in gateway.list_charges(None) if c.id == charge["id"]]
    assert len(listed) == 1 and listed[0].payment_intent is not None
    assert listed[0].payment_intent.metadata["hopsplane_account"] == "auth0|a"


def test_missing_objects_are_not_found(gateway: StripeApi) -> None:
    with pytest.raises(NotFound):
        gateway.retrieve_charge("ch_doesnotexist")
    with pytest.raises(NotFound):
        gateway.retrieve_checkout_session("cs_test_nope")


def test_signatures_follow_stripes_scheme(gateway: StripeApi) -> None:
    import hashlib
    import hmac

    event = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    body, header = sign(event)
    # The header is Stripe's: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")
    t = int(header.split(",")[0][2:])
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256)
    assert header == f"t={t},v1={mac.hexdigest()}"
    assert gateway.verify_event(body, header).id == event["id"]

    with pytest.raises(Unauthorized):
        gateway.verify_event(body + b" ", header)  # body changed after signing
    with pytest.raises(Unauthorized):
        gateway.verify_event(body, sign(event, secret="whsec_other")[1])
    with pytest.raises(Unauthorized):
        gateway.verify_event(body, None)
    with pytest.raises(Unauthorized, match="tolerance"):
        stale = int(time.time()) - 301
        gateway.verify_event(*sign(event, timestamp=stale))
    with pytest.raises(Invalid):
        gateway.verify_event(*_signed_raw(b'{"not": "an event"}'))


def _signed_raw(body: bytes) -> tuple[bytes, str]:
    import stripe

    return body, stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
