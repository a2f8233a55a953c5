"""Auto top-up end to end: the real stripe client against localstripe behind the front, the
real job queue, the real ledger. Each test names the failure it makes impossible."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.composition.hooks import register_listeners
from hopsplane.composition.jobs import handlers, services
from hopsplane.config import Settings
from hopsplane.credits import expiry
from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import BalancePolicy, Posting
from hopsplane.db.engine import Database
from hopsplane.hooks import LoggingHooks
from hopsplane.integrations.email import LogMailer
from hopsplane.integrations.stripe import StripeApi
from hopsplane.integrations.stripe.types import ChargeOutcome, OffSessionCharge
from hopsplane.notices import service as notices
from hopsplane.payments.autotopup import service as autotopup
from hopsplane.payments.autotopup.rules import Limits, charge_key
from hopsplane.payments.autotopup.schemas import ChargePlan
from hopsplane.worker import service as queue
from hopsplane.worker.schemas import JobContext
from tests.apps import act_as
from tests.factories import committed_user, post
from tests.payments.fakes import StripeFront, stripe_event
from tests.payments.helpers import checkout_event, count, deliver, ledger

DECLINES = "4000000000000341"  # attaches, every charge declined (docs.stripe.com/testing)
ALWAYS_3DS = "4000002760003184"  # authentication on every payment, off-session too


@pytest.fixture
def outage_off(stripe_front: StripeFront) -> Iterator[StripeFront]:
    yield stripe_front
    stripe_front.outage = False


def _settings(base: Settings, **limits: Any) -> Settings:
    return Settings(**{**base.model_dump(), **limits, "_env_file": None})  # type: ignore[arg-type]


def _ctx(settings: Settings, db: Database, gateway: StripeApi) -> tuple[JobContext, LogMailer]:
    mailer = LogMailer()
    built = replace(services(settings, db), stripe=gateway, mailer=mailer,
                    hooks=register_listeners(LoggingHooks(), None))
    return JobContext(built), mailer


def _drain(db: Database, ctx: JobContext, now: Any = None) -> int:
    ran = 0
    while queue.run_one(db, handlers(), ctx, now) is not None:
        ran += 1
    return ran


def _enable(client: TestClient, front: StripeFront, owner: str, *, card: str = "4242424242424242",
            threshold: str = "20.00", amount: str = "50.00") -> dict[str, Any]:
    act_as(client, owner)
    r = client.put("/v1/account/auto-topup", json={"threshold": threshold, "amount": amount,
                                                   "accept_terms": True})
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "awaiting_card"
    r = client.post("/v1/account/auto-topup/card")
    assert r.status_code == 201, r.json()
    front.save_card(r.json()["session_id"], card)
    r = client.get(f"/v1/account/auto-topup/card/{r.json()['session_id']}/complete")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "on"
    return dict(r.json())


def _fund(db: Database, owner: str, amount: str) -> None:
    with db.transaction() as s:
        post(s, owner, EntryType.GRANT, amount)


def _use(db: Database, owner: str, amount: str) -> None:
    """One usage debit, through the ledger's batch path with the app's watching hooks."""
    with db.transaction() as s:
        credits.post_many(s, [Posting(owner, EntryType.USAGE, -Decimal(amount),
                                      f"test:usage:{uuid.uuid4().hex}")],
                          hooks=register_listeners(LoggingHooks(), None))


def _attempts(db: Database, owner: str) -> list[Any]:
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT * FROM hopsplane.auto_topup_attempts WHERE account_owner_id = :a "
            "ORDER BY created_at"), {"a": owner}).mappings())


def _crossed_and_decided(
    client: TestClient, db: Database, front: StripeFront, settings: Settings,
    gateway: StripeApi,
) -> tuple[str, Limits, ChargePlan]:
    """An owner with auto top-up whose usage just crossed, and the charge decided (the
    job's first step), so a test can play Stripe's answer and the webhooks itself."""
    owner = committed_user(db)
    _enable(client, front, owner)
    _fund(db, owner, "21.00")
    _use(db, owner, "2.00")
    limits = autotopup.limits_from(settings)
    [attempt] = _attempts(db, owner)
    with db.transaction() as s:
        plan = autotopup.begin_charge(s, gateway, limits, attempt["id"])
    assert plan is not None
    return owner, limits, plan


def _notices(db: Database, owner: str) -> list[str]:
    with db.transaction() as s:
        rows = s.execute(text(
            "SELECT args -> 'payload' ->> 'event' FROM hopsplane.jobs WHERE task = :t "
            "AND args ->> 'kind' = 'auto_topup' AND args ->> 'account' = :a ORDER BY id"),
            {"t": notices.SEND_TASK, "a": owner}).scalars()
        return list(rows)


def _purchases(db: Database, owner: str) -> list[Decimal]:
    return [amount for kind, amount, _ in ledger(db, owner) if kind == "purchase"]


def test_opt_in_needs_the_terms_and_records_who_agreed_to_what(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    refused = app_client.put("/v1/account/auto-topup", json={
        "threshold": "20.00", "amount": "50.00", "accept_terms": False})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid"
    bad = app_client.put("/v1/account/auto-topup", json={
        "threshold": "20.00", "amount": "1e3", "accept_terms": True})
    assert bad.status_code == 422
    assert app_client.get("/v1/account/auto-topup").json()["status"] == "off"
    state = _enable(app_client, stripe_front, owner)
    assert state["card"] == "visa ending 4242"
    assert state["consent"]["given_by"] == owner
    assert "50.00 USD" in state["consent"]["terms"] and "below 20.00 USD" in state["consent"][
        "terms"]
    # the card is attached to the customer at Stripe
    with fresh_db.transaction() as s:
        pm, cus = s.execute(text(
            "SELECT a.payment_method_id, u.stripe_test_customer_id FROM hopsplane.auto_topup a "
            "JOIN users u ON u.id = a.account_owner_id WHERE a.account_owner_id = :a"),
            {"a": owner}).one()
    assert stripe_front.client.v1.payment_methods.retrieve(pm).customer == cus
    # a member without a delegated role may not
    member = committed_user(fresh_db, owner=owner)
    act_as(app_client, member, owner=owner)
    assert app_client.get("/v1/account/auto-topup").status_code == 403


def test_concurrent_crossings_start_exactly_one_auto_topup(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    """Lago #6103 (runaway charges): 16 usage postings race across the threshold."""
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner)
    _fund(fresh_db, owner, "26.00")
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def post() -> None:
        try:
            barrier.wait()
            _use(fresh_db, owner, "1.00")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    attempts = _attempts(fresh_db, owner)
    assert len(attempts) == 1 and attempts[0]["balance_at_crossing"] < Decimal("20.00")
    assert count(fresh_db, f"SELECT count(*) FROM hopsplane.jobs WHERE task = "
                           f"'{autotopup.CHARGE_TASK}'") == 1
    before = len(stripe_front.intent_requests)
    ctx, _ = _ctx(stripe_settings, fresh_db, gateway)
    _drain(fresh_db, ctx)
    assert len(stripe_front.intent_requests) == before + 1
    assert _purchases(fresh_db, owner) == [Decimal("50.00")]
    assert _attempts(fresh_db, owner)[0]["status"] == "succeeded"
    assert _notices(fresh_db, owner) == ["succeeded"]


def test_a_webhook_storm_credits_once(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    """Duplicate and concurrent payment_intent.succeeded deliveries, racing the job's own
    record of the same payment: one purchase, one notice (Lago #5947's twin)."""
    owner, limits, plan = _crossed_and_decided(app_client, fresh_db, stripe_front,
                                               stripe_settings, gateway)
    outcome = gateway.charge_off_session(OffSessionCharge(
        plan.customer_id, plan.payment_method_id, 5000, "usd", autotopup.charge_metadata(plan),
        charge_key(str(plan.attempt_id), plan.try_no)))
    assert outcome.status == "succeeded" and outcome.payment_intent_id
    pi = stripe_front.client.v1.payment_intents.retrieve(outcome.payment_intent_id).to_dict()
    events = [stripe_event("payment_intent.succeeded", pi) for _ in range(4)]
    storm = events + events  # every event twice
    results: list[int] = []

    def deliver_one(event: dict[str, Any]) -> None:
        results.append(deliver(app_client, event).status_code)

    def record() -> None:
        with fresh_db.transaction() as s:
            autotopup.record_outcome(s, limits, plan, outcome, BalancePolicy())

    threads = [threading.Thread(target=deliver_one, args=(e,)) for e in storm]
    threads.append(threading.Thread(target=record))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(storm)
    assert _purchases(fresh_db, owner) == [Decimal("50.00")]
    assert _attempts(fresh_db, owner)[0]["status"] == "succeeded"
    assert _notices(fresh_db, owner) == ["succeeded"]
    with fresh_db.transaction() as s:
        assert credits.verify(s, owner).ok


def test_the_daily_count_cap_defers_to_the_next_day(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    settings = _settings(stripe_settings, auto_topup_max_per_day=1)
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner, amount="10.00")
    _fund(fresh_db, owner, "21.00")
    ctx, _ = _ctx(settings, fresh_db, gateway)
    _use(fresh_db, owner, "2.00")  # 19.00: charge 1 -> 29.00
    _drain(fresh_db, ctx)
    _use(fresh_db, owner, "10.00")  # 19.00 again: a second crossing today
    sent = len(stripe_front.intent_requests)
    _drain(fresh_db, ctx)
    assert len(stripe_front.intent_requests) == sent  # no second PaymentIntent
    first, second = _attempts(fresh_db, owner)
    assert first["status"] == "succeeded"
    assert second["status"] == "scheduled" and "daily limit of 1" in second["outcome"]
    tomorrow = second["next_try_at"]
    assert tomorrow.hour == 0 and tomorrow.minute == 0
    # the next UTC day the same attempt passes the cap (decided with tomorrow's clock)
    with fresh_db.transaction() as s:
        plan = autotopup.begin_charge(s, gateway, autotopup.limits_from(settings),
                                      second["id"], now=tomorrow)
    assert plan is not None and plan.try_no == 1
    assert _purchases(fresh_db, owner) == [Decimal("10.00")]


def test_the_daily_money_cap_holds_across_crossings(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    settings = _settings(stripe_settings, auto_topup_max_amount_per_day=Decimal("60.00"))
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner, amount="50.00")
    _fund(fresh_db, owner, "21.00")
    ctx, _ = _ctx(settings, fresh_db, gateway)
    _use(fresh_db, owner, "2.00")
    _drain(fresh_db, ctx)
    _use(fresh_db, owner, "50.00")
    _drain(fresh_db, ctx)
    first, second = _attempts(fresh_db, owner)
    assert first["status"] == "succeeded"
    assert second["status"] == "scheduled" and "money limit of 60.00" in second["outcome"]
    assert _purchases(fresh_db, owner) == [Decimal("50.00")]
    view = app_client.get("/v1/account/auto-topup").json()
    assert view["today_count"] == 1 and Decimal(view["today_amount"]) == Decimal("50.00")


def test_declines_back_off_then_pause_and_tell_the_owner(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    """Lago #5992 (silently stopped): every failure is a notice, the third pauses it."""
    settings = _settings(stripe_settings, auto_topup_max_failures=3,
                         auto_topup_backoff_seconds=60)
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner, card=DECLINES)
    _fund(fresh_db, owner, "21.00")
    ctx, _ = _ctx(settings, fresh_db, gateway)
    _use(fresh_db, owner, "2.00")
    _drain(fresh_db, ctx)
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["status"] == "scheduled" and attempt["tries"] == 1
    assert "card_declined" in attempt["outcome"] and "generic_decline" in attempt["outcome"]
    first_retry = attempt["next_try_at"]
    assert _drain(fresh_db, ctx, first_retry - timedelta(seconds=1)) == 0  # not due yet
    assert _attempts(fresh_db, owner)[0]["tries"] == 1  # not before its time
    _drain(fresh_db, ctx, first_retry + timedelta(seconds=1))
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["tries"] == 2
    with fresh_db.transaction() as s:  # the retry is queued for exactly the backoff's time
        queued = s.execute(text(
            "SELECT run_at FROM hopsplane.jobs WHERE task = :t AND status = 'queued'"),
            {"t": autotopup.CHARGE_TASK}).scalar_one()
    assert queued == attempt["next_try_at"] > first_retry
    _drain(fresh_db, ctx, attempt["next_try_at"] + timedelta(seconds=1))
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["status"] == "failed" and attempt["tries"] == 3
    view = app_client.get("/v1/account/auto-topup").json()
    assert view["status"] == "paused" and "3 auto top-ups failed in a row" in view[
        "paused_reason"]
    assert _notices(fresh_db, owner) == ["failed", "failed", "paused"]
    assert _purchases(fresh_db, owner) == []
    # paused: a new crossing starts nothing
    _fund(fresh_db, owner, "30.00")
    _use(fresh_db, owner, "30.00")
    assert len(_attempts(fresh_db, owner)) == 1


def test_authentication_required_sends_a_link_instead_of_retrying(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner, card=ALWAYS_3DS)
    _fund(fresh_db, owner, "21.00")
    ctx, mailer = _ctx(stripe_settings, fresh_db, gateway)
    _use(fresh_db, owner, "2.00")
    _drain(fresh_db, ctx)
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["status"] == "requires_action" and attempt["tries"] == 1
    assert _notices(fresh_db, owner) == ["action_required"]
    [mail] = mailer.sent
    assert "https://console.hopsplane.test/console/auto-topup" in mail.body
    assert _drain(fresh_db, ctx, attempt["updated_at"] + timedelta(days=2)) == 0  # no retry
    view = app_client.get("/v1/account/auto-topup").json()
    assert view["action_required"]["id"] == str(attempt["id"])
    link = app_client.post(f"/v1/account/auto-topup/attempts/{attempt['id']}/complete")
    assert link.status_code == 201, link.json()
    paid = stripe_front.pay(link.json()["session_id"])  # on Stripe's page, 3DS done there
    for _ in range(2):
        assert deliver(app_client, checkout_event("checkout.session.completed", paid)
                       ).status_code == 200
    assert _purchases(fresh_db, owner) == [Decimal("50.00")]
    assert _attempts(fresh_db, owner)[0]["status"] == "succeeded"
    assert _notices(fresh_db, owner) == ["action_required", "succeeded"]


def test_turning_off_or_removing_the_card_stops_what_is_queued(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner)
    _fund(fresh_db, owner, "21.00")
    _use(fresh_db, owner, "2.00")  # a charge job is queued
    off = app_client.delete("/v1/account/auto-topup")
    assert off.status_code == 200 and off.json()["status"] == "off"
    assert off.json()["consent"]["revoked_at"] is not None
    sent = len(stripe_front.intent_requests)
    ctx, _ = _ctx(stripe_settings, fresh_db, gateway)
    _drain(fresh_db, ctx)
    assert len(stripe_front.intent_requests) == sent
    assert _attempts(fresh_db, owner)[0]["status"] == "canceled"
    # on again (the saved card is kept), then the card removed: nothing charges either
    again = app_client.put("/v1/account/auto-topup", json={
        "threshold": "20.00", "amount": "50.00", "accept_terms": True})
    assert again.json()["status"] == "on"
    removed = app_client.delete("/v1/account/auto-topup/card")
    assert removed.status_code == 200 and removed.json()["card"] is None
    _fund(fresh_db, owner, "10.00")
    _use(fresh_db, owner, "10.00")
    _drain(fresh_db, ctx)
    assert len(stripe_front.intent_requests) == sent and _purchases(fresh_db, owner) == []


def test_stripe_unavailable_retries_later_and_credits_nothing_meanwhile(
    app_client: TestClient, fresh_db: Database, outage_off: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    front = outage_off
    owner = committed_user(fresh_db)
    _enable(app_client, front, owner)
    _fund(fresh_db, owner, "21.00")
    front.outage = True
    _use(fresh_db, owner, "2.00")  # the posting is not blocked by the outage
    ctx, _ = _ctx(stripe_settings, fresh_db, gateway)
    sent = len(front.intent_requests)
    _drain(fresh_db, ctx)
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["status"] == "charging" and _purchases(fresh_db, owner) == []
    with fresh_db.transaction() as s:
        error = s.execute(text("SELECT last_error FROM hopsplane.jobs WHERE task = :t"),
                          {"t": autotopup.CHARGE_TASK}).scalar_one()
    assert "unavailable" in error.lower()
    front.outage = False
    _drain(fresh_db, ctx, attempt["updated_at"] + timedelta(hours=2))
    assert len(front.intent_requests) == sent + 1
    assert _purchases(fresh_db, owner) == [Decimal("50.00")]
    assert _attempts(fresh_db, owner)[0]["tries"] == 1  # the same try, the same key


def test_a_processing_payment_that_fails_later_counts_as_a_failure_once(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    """A PaymentIntent Stripe answers ``processing`` (asynchronous methods) stays active
    until Stripe reports it; ``payment_intent.payment_failed`` (delivered twice) counts one
    failure and schedules the retry: it never hangs silently."""
    owner, limits, plan = _crossed_and_decided(app_client, fresh_db, stripe_front,
                                               stripe_settings, gateway)
    pi = "pi_processing_" + uuid.uuid4().hex[:8]
    processing = ChargeOutcome("processing", pi, 5000, "usd")  # Stripe's async answer
    with fresh_db.transaction() as s:
        assert autotopup.record_outcome(s, limits, plan, processing, BalancePolicy()) == (
            "processing")
    failed = stripe_event("payment_intent.payment_failed", {
        "id": pi, "object": "payment_intent", "status": "requires_payment_method",
        "amount": 5000, "currency": "usd", "livemode": False,
        "metadata": autotopup.charge_metadata(plan),
        "last_payment_error": {"code": "payment_method_customer_decline",
                               "message": "The customer's bank declined the debit."}})
    for _ in range(2):
        assert deliver(app_client, failed).json()["status"] in ("processed", "duplicate")
    ctx, _ = _ctx(stripe_settings, fresh_db, gateway)
    _drain(fresh_db, ctx)
    [attempt] = _attempts(fresh_db, owner)
    assert attempt["status"] == "scheduled" and "bank declined" in attempt["outcome"]
    assert _notices(fresh_db, owner) == ["failed"] and _purchases(fresh_db, owner) == []



def test_usage_below_the_threshold_charges_after_a_short_topup_or_an_expiry(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    stripe_settings: Settings, gateway: StripeApi,
) -> None:
    """The balance went below the threshold by another route than usage (a credit that
    did not lift it above, an auto top-up too small to, an expiry): later usage must still
    start a charge, or auto top-up goes quiet while 'on' and the account is suspended."""
    ctx, _ = _ctx(stripe_settings, fresh_db, gateway)
    owner = committed_user(fresh_db)
    _enable(app_client, stripe_front, owner, amount="5.00")
    _fund(fresh_db, owner, "10.00")  # below 20 from the start: no usage crossed anything
    _use(fresh_db, owner, "1.00")  # 9.00
    assert len(_attempts(fresh_db, owner)) == 1
    _drain(fresh_db, ctx)
    assert _purchases(fresh_db, owner) == [Decimal("5.00")]  # 14.00: still below
    _use(fresh_db, owner, "1.00")  # 13.00, after a top-up that did not lift it above
    _drain(fresh_db, ctx)
    assert _purchases(fresh_db, owner) == [Decimal("5.00")] * 2
    assert [a["status"] for a in _attempts(fresh_db, owner)] == ["succeeded"] * 2

    # an expiry takes the balance below the threshold; the next usage charges
    other = committed_user(fresh_db)
    _enable(app_client, stripe_front, other, amount="50.00")
    with fresh_db.transaction() as s:
        now = s.execute(text("SELECT now()")).scalar_one()
        post(s, other, EntryType.PURCHASE, "15.00")
        credits.post(s, Posting(other, EntryType.GRANT, Decimal("30.00"),
                                f"test:grant:{uuid.uuid4().hex}",
                                expires_at=now + timedelta(days=1)))
    later = now + timedelta(days=2)
    with fresh_db.transaction() as s:
        expired = expiry.expire_due(s, now=later)
    assert [r.entry.amount for r in expired if r.entry.account_owner_id == other] == [
        Decimal("-30.00")]
    assert _attempts(fresh_db, other) == []  # an expiry is not usage: nothing yet
    with fresh_db.transaction() as s:
        credits.post_many(s, [Posting(other, EntryType.USAGE, Decimal("-1.00"),
                                      f"test:usage:{uuid.uuid4().hex}",
                                      at=later + timedelta(hours=1))],
                          hooks=register_listeners(LoggingHooks(), None))
    assert len(_attempts(fresh_db, other)) == 1
    _drain(fresh_db, ctx)
    assert _purchases(fresh_db, other) == [Decimal("15.00"), Decimal("50.00")]
