"""POST /v1/stripe/webhook: signed events, stored once, credited once, refunds by difference."""

import time
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorRefund
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict
from tests.apps import act_as
from tests.factories import RecordingHooks, committed_user, post
from tests.payments.fakes import StripeFront, stripe_event
from tests.payments.helpers import (
    balance,
    checkout_event,
    count,
    deliver,
    ledger,
    paid_session,
    paid_through_checkout,
    stored_events,
)


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_a_purchase_is_credited_once_however_often_it_arrives(
    app_client: TestClient, fresh_db: Database
) -> None:
    owner = committed_user(fresh_db)
    cs = paid_session(owner, "pi_once", 2500)
    completed = checkout_event("checkout.session.completed", cs)
    for _ in range(3):
        r = deliver(app_client, completed)
        assert r.status_code == 200
    assert r.json()["status"] == "duplicate"
    # the same payment through the other event type is "already credited"
    r = deliver(app_client, checkout_event("checkout.session.async_payment_succeeded", cs))
    assert r.json() == {"received": True, "event_id": r.json()["event_id"],
                        "status": "processed", "note": "already credited"}
    assert ledger(fresh_db, owner) == [("purchase", Decimal("25.00"), Decimal("25.00"))]
    assert count(fresh_db, "SELECT count(*) FROM hopsplane.stripe_events") == 2


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_an_async_payment_is_credited_when_it_succeeds_not_when_the_session_completes(
    app_client: TestClient, fresh_db: Database
) -> None:
    owner = committed_user(fresh_db)
    unpaid = paid_session(owner, "pi_sepa", 4000, status="unpaid")
    r = deliver(app_client, checkout_event("checkout.session.completed", unpaid))
    assert r.json()["status"] == "ignored" and balance(fresh_db, owner) == 0
    paid = {**unpaid, "payment_status": "paid"}
    r = deliver(app_client, checkout_event("checkout.session.async_payment_succeeded", paid))
    assert r.json()["status"] == "processed"
    assert balance(fresh_db, owner) == Decimal("40.00")


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_forged_stale_and_wrong_mode_events_are_refused_and_change_nothing(
    app_client: TestClient, fresh_db: Database
) -> None:
    owner = committed_user(fresh_db)
    event = checkout_event("checkout.session.completed", paid_session(owner, "pi_x", 9900))
    forged = deliver(app_client, event, secret="whsec_attacker")
    stale = deliver(app_client, event, timestamp=int(time.time()) - 301)
    live = checkout_event("checkout.session.completed", paid_session(owner, "pi_y", 9900),
                          livemode=True)
    wrong_mode = deliver(app_client, live)
    unsigned = app_client.post("/v1/stripe/webhook", content=b"{}")
    assert forged.status_code == 401 and forged.json()["error"] == "Unauthorized"
    assert stale.status_code == 401 and "tolerance" in stale.json()["detail"]
    assert wrong_mode.status_code == 422 and "live-mode" in wrong_mode.json()["detail"]
    assert unsigned.status_code == 401
    assert stored_events(fresh_db) == {} and ledger(fresh_db, owner) == []
    # the genuine delivery still works afterwards
    assert deliver(app_client, event).json()["status"] == "processed"
    assert balance(fresh_db, owner) == Decimal("99.00")


def test_a_tampered_body_fails_the_signature(app_client: TestClient, fresh_db: Database) -> None:
    from tests.payments.fakes import sign

    owner = committed_user(fresh_db)
    event = checkout_event("checkout.session.completed", paid_session(owner, "pi_t", 1000))
    body, header = sign(event)
    tampered = body.replace(b"1000", b"9000")
    r = app_client.post("/v1/stripe/webhook", content=tampered,
                        headers={"Stripe-Signature": header})
    assert r.status_code == 401 and ledger(fresh_db, owner) == []


def test_unknown_events_are_acknowledged_and_recorded(
    app_client: TestClient, fresh_db: Database
) -> None:
    event = stripe_event("customer.subscription.created", {"id": "sub_1", "object": "x"})
    r = deliver(app_client, event)
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert stored_events(fresh_db) == {event["id"]: ("ignored", None)}


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_events_that_cannot_be_credited_are_recorded_as_failed_and_acknowledged(
    app_client: TestClient, fresh_db: Database
) -> None:
    owner = committed_user(fresh_db)
    member = committed_user(fresh_db, owner=owner)
    nobody = checkout_event("checkout.session.completed", paid_session("auth0|ghost", "pi_g", 500))
    euro = checkout_event("checkout.session.completed",
                          {**paid_session(owner, "pi_e", 500), "currency": "eur"})
    for event in (nobody, euro):
        r = deliver(app_client, event)
        assert r.status_code == 200 and r.json()["status"] == "failed", r.json()
    events = stored_events(fresh_db)
    assert {status for status, _ in events.values()} == {"failed"}
    assert "EUR" in events[euro["id"]][1]  # type: ignore[operator]
    assert count(fresh_db, "SELECT count(*) FROM credits_ledger") == 0
    # a payment naming someone who has joined a team since is not lost: it is credited to
    # the account they joined (test_join_and_checkout.py has the whole story)
    to_member = checkout_event("checkout.session.completed", paid_session(member, "pi_m", 500))
    r = deliver(app_client, to_member)
    assert r.json()["status"] == "processed" and r.json()["note"] == "credited", r.json()
    assert ledger(fresh_db, owner) == [("purchase", Decimal("5.00"), Decimal("5.00"))]


def test_refunds_post_the_refunded_difference(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, pi, charge_id = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                                  amount="100.00")
    charge = stripe_front.refund(pi, 3000)
    assert charge["amount_refunded"] == 3000
    first = stripe_event("charge.refunded", charge)
    assert deliver(app_client, first).json()["status"] == "processed"
    assert deliver(app_client, first).json()["status"] == "duplicate"
    charge = stripe_front.refund(pi, 2000)
    # refund.* events carry the refund; the charge is re-read from Stripe
    refund_event = stripe_event("refund.created", {"id": "re_x", "object": "refund",
                                                   "charge": charge_id, "amount": 2000})
    assert deliver(app_client, refund_event).json()["status"] == "processed"
    # an older charge.refunded snapshot arriving late changes nothing
    assert deliver(app_client, stripe_event("charge.refunded", charge)).status_code == 200
    assert ledger(fresh_db, owner) == [
        ("purchase", Decimal("100.00"), Decimal("100.00")),
        ("refund", Decimal("-30.00"), Decimal("70.00")),
        ("refund", Decimal("-20.00"), Decimal("50.00")),
    ]


def test_a_refund_delivered_before_its_purchase_ends_with_the_right_balance(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    topup = app_client.post("/v1/account/topups", json={"amount": "80.00"}).json()
    paid = stripe_front.pay(topup["session_id"])
    charge = stripe_front.refund(paid["payment_intent"], 2500)
    # Stripe delivers the refund first (no purchase in the ledger yet) ...
    r = deliver(app_client, stripe_event("charge.refunded", charge))
    assert r.status_code == 200 and r.json()["status"] == "processed"
    assert balance(fresh_db, owner) == Decimal("55.00")
    # ... then the purchase, twice: already credited
    completed = checkout_event("checkout.session.completed", paid)
    assert deliver(app_client, completed).json()["note"] == "already credited"
    assert deliver(app_client, completed).json()["status"] == "duplicate"
    assert ledger(fresh_db, owner) == [
        ("purchase", Decimal("80.00"), Decimal("80.00")),
        ("refund", Decimal("-25.00"), Decimal("55.00")),
    ]


def test_a_refund_stripe_made_is_recorded_even_below_zero_and_suspends(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    """Purchase 50, use 40, refund 50 in Stripe: the customer has the money back, so the
    ledger records it whatever the balance, exactly like a dispute, and suspends."""
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                          amount="50.00")
    with fresh_db.transaction() as s:
        post(s, owner, "usage", "-40.00")
    charge = stripe_front.refund(pi)  # the whole 50.00 back on the card
    event = stripe_event("charge.refunded", charge)
    r = deliver(app_client, event)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.json()
    assert ledger(fresh_db, owner)[-1] == ("refund", Decimal("-50.00"), Decimal("-40.00"))
    assert deliver(app_client, event).json()["status"] == "duplicate"
    assert stored_events(fresh_db)[event["id"]] == ("processed", None)
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT suspended FROM hopsplane.account_standing "
                              "WHERE account_owner_id = :a"), {"a": owner}).scalar_one()
        assert credits.verify(s, owner).ok
    # a refund made here (not by Stripe) still may not overdraw
    with fresh_db.transaction() as s:
        purchase = credits.purchase_for_payment_intent(s, pi)
        assert purchase is not None
    other, other_pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front,
                                                owner=None, amount="20.00")
    with fresh_db.transaction() as s:
        post(s, other, "usage", "-15.00")
        mine = credits.purchase_for_payment_intent(s, other_pi)
        assert mine is not None
        with pytest.raises(Conflict, match="below zero"):
            credits.refund(s, other, mine.id, "20.00", reason="goodwill",
                           origin=OperatorRefund("r1"))


def test_webhooks_answer_503_when_stripe_is_not_configured(
    fresh_db: Database, settings: object
) -> None:
    from hopsplane.api.app import create_app

    with TestClient(create_app(settings, database=fresh_db)) as c:  # type: ignore[arg-type]
        r = c.post("/v1/stripe/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"})
    assert r.status_code == 503 and r.json()["error"] == "Unavailable"


def test_concurrent_refund_events_refund_the_cumulative_amount_once(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    import threading

    owner, pi, charge_id = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                                  amount="60.00")
    stripe_front.refund(pi, 3000)
    charge = stripe_front.refund(pi, 2000)
    events = [stripe_event("charge.refunded", charge),
              stripe_event("refund.updated", {"id": "re_1", "object": "refund",
                                              "charge": charge_id})]
    deliveries = [e for e in events for _ in range(3)]
    codes: list[int] = []

    def send(event: dict) -> None:  # type: ignore[type-arg]
        codes.append(deliver(app_client, event).status_code)

    threads = [threading.Thread(target=send, args=(e,)) for e in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    refunds = [e for e in ledger(fresh_db, owner) if e[0] == "refund"]
    assert sum(amount for _, amount, _ in refunds) == Decimal("-50.00")
    assert balance(fresh_db, owner) == Decimal("10.00")


def test_a_live_server_refuses_test_mode_events(session: object, gateway: object) -> None:
    import dataclasses

    import pytest

    from hopsplane.errors import Invalid
    from hopsplane.integrations.stripe import StripeApi, parse_event
    from hopsplane.payments import webhooks
    from tests.payments.fakes import sign

    assert isinstance(gateway, StripeApi)
    live = StripeApi("sk_live_x", "whsec_x", dataclasses.replace(gateway.config, mode="live"))
    event = parse_event(sign(stripe_event("charge.refunded", {"id": "ch_1"}))[0])
    with pytest.raises(Invalid, match="test-mode event"):
        webhooks.handle_event(session, live, event)  # type: ignore[arg-type]


def test_refunds_of_payments_that_are_not_top_ups_are_ignored(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    client = stripe_front.client
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 1, "exp_year": 2031, "cvc": "111"}})
    pi = client.v1.payment_intents.create(params={
        "amount": 999, "currency": "usd", "payment_method": pm.id, "confirm": True})
    charge = stripe_front.refund(pi.id)
    r = deliver(app_client, stripe_event("charge.refunded", charge))
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert count(fresh_db, "SELECT count(*) FROM credits_ledger") == 0


def test_when_stripe_is_unreachable_the_event_is_not_stored_and_stripe_retries(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: object,
) -> None:
    from hopsplane.integrations.stripe import StripeApi, config_from_settings
    from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, free_port

    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                          amount="30.00")
    charge = stripe_front.refund(pi, 1000)
    event = stripe_event("charge.refunded", charge)
    working = app_client.app.state.stripe  # type: ignore[attr-defined]
    app_client.app.state.stripe = StripeApi(  # type: ignore[attr-defined]
        TEST_KEY, WEBHOOK_SECRET, config_from_settings(stripe_settings),  # type: ignore[arg-type]
        api_base=f"http://127.0.0.1:{free_port()}")
    r = deliver(app_client, event)
    assert r.status_code == 503 and r.json()["error"] == "Unavailable"
    assert event["id"] not in stored_events(fresh_db)
    assert balance(fresh_db, owner) == Decimal("30.00")
    app_client.app.state.stripe = working  # type: ignore[attr-defined]
    assert deliver(app_client, event).json()["status"] == "processed"  # Stripe's retry
    assert balance(fresh_db, owner) == Decimal("20.00")


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_a_purchase_that_lifts_a_suspension_announces_the_resumption_at_once(
    app_client: TestClient, fresh_db: Database
) -> None:
    """The account hooks hear of the resumption inside the webhook's own transaction, so the
    account's Hopsworks users are queued for reactivation without waiting for a billing run."""
    hooks = RecordingHooks()
    app_client.app.state.account_hooks = hooks  # type: ignore[attr-defined]
    owner = committed_user(fresh_db)
    with fresh_db.transaction() as s:
        post(s, owner, "usage", "-5.00")  # at or below zero: suspended
    r = deliver(app_client, checkout_event("checkout.session.completed",
                                           paid_session(owner, "pi_resume", 1000)))
    assert r.json()["status"] == "processed"
    assert balance(fresh_db, owner) == Decimal("5.00")
    assert hooks.events == [("account_resumed", owner)]
    r = deliver(app_client, checkout_event("checkout.session.async_payment_succeeded",
                                           paid_session(owner, "pi_resume", 1000)))
    assert hooks.events == [("account_resumed", owner)]  # a repeat announces nothing
