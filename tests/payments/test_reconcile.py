"""hopsplane stripe reconcile: Stripe's succeeded payments and refunds against the ledger."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import CheckoutRequest, StripeApi
from hopsplane.payments.reconcile import reconcile
from tests.factories import committed_user
from tests.payments.fakes import LocalStripe, StripeFront, stripe_event
from tests.payments.helpers import cli_env, deliver, empty_stripe, ledger

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty(localstripe: LocalStripe, stripe_front: StripeFront) -> None:
    """Reconciliation reads every charge and dispute: start from an empty Stripe."""
    empty_stripe(localstripe, stripe_front)


def _pay(gateway: StripeApi, front: StripeFront, owner: str, cents: int) -> str:
    """A top-up paid on Stripe whose webhook never arrived. Returns its payment intent."""
    customer = gateway.create_customer(f"{owner[6:]}@example.com", owner, f"k-{owner}")
    cs = gateway.create_checkout_session(CheckoutRequest(
        customer_id=customer, account_owner_id=owner, amount_minor=cents, currency="usd",
        success_url="https://x.test/ok", cancel_url="https://x.test/no", description="c"))
    return str(front.pay(cs.id)["payment_intent"])


def test_reconcile_lists_then_fixes_missing_purchases_and_refunds(
    fresh_db: Database, gateway: StripeApi, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    pi_a = _pay(gateway, stripe_front, owner, 4000)
    pi_b = _pay(gateway, stripe_front, owner, 1500)
    stripe_front.refund(pi_a, 1000)
    since = datetime.now(UTC) - timedelta(hours=1)

    with fresh_db.transaction() as s:
        report = reconcile(s, gateway, since=since, fix=False)
    found = {(d.kind, d.payment_intent_id, d.amount) for d in report.discrepancies}
    assert found == {
        ("missing_purchase", pi_a, Decimal("40.00")),
        ("missing_refund", pi_a, Decimal("10.00")),
        ("missing_purchase", pi_b, Decimal("15.00")),
    }
    assert not report.ok and ledger(fresh_db, owner) == []

    with fresh_db.transaction() as s:
        fixed = reconcile(s, gateway, since=since, fix=True)
    assert fixed.ok and len(fixed.discrepancies) == 3
    entries = ledger(fresh_db, owner)
    assert sorted((kind, amount) for kind, amount, _ in entries) == [
        ("purchase", Decimal("15.00")), ("purchase", Decimal("40.00")),
        ("refund", Decimal("-10.00")),
    ]
    assert entries[-1][2] == Decimal("45.00")

    with fresh_db.transaction() as s:
        again = reconcile(s, gateway, since=since, fix=False)
    assert again.discrepancies == [] and again.payments_checked == 2


def test_a_late_webhook_after_a_fix_credits_nothing_more(
    fresh_db: Database, gateway: StripeApi, stripe_front: StripeFront, app_client: object
) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(app_client, TestClient)
    owner = committed_user(fresh_db)
    pi = _pay(gateway, stripe_front, owner, 2000)
    with fresh_db.transaction() as s:
        assert reconcile(s, gateway, since=None, fix=True).ok
    [cs] = [c for c in stripe_front.sessions.values() if c["payment_intent"] == pi]
    r = deliver(app_client, stripe_event("checkout.session.completed", stripe_front.public(cs)))
    assert r.json()["note"] == "already credited"
    assert ledger(fresh_db, owner) == [("purchase", Decimal("20.00"), Decimal("20.00"))]


def test_the_cli_lists_exits_1_then_fixes(
    monkeypatch: pytest.MonkeyPatch, fresh_url: str, fresh_db: Database, gateway: StripeApi,
    stripe_front: StripeFront,
) -> None:
    owner = committed_user(fresh_db)
    pi = _pay(gateway, stripe_front, owner, 3300)
    cli_env(monkeypatch, fresh_url, stripe_front)
    today = datetime.now(UTC).date().isoformat()

    listed = runner.invoke(cli, ["stripe", "reconcile", "--since", today])
    assert listed.exit_code == 1, listed.output
    assert pi in listed.output and "missing_purchase" in listed.output
    as_json = runner.invoke(cli, ["stripe", "reconcile", "--since", today, "--json"])
    assert as_json.exit_code == 1
    [missing] = json.loads(as_json.stdout)["discrepancies"]
    assert (missing["payment_intent_id"], missing["account_owner_id"], missing["amount"]) == (
        pi, owner, "33.00")
    assert ledger(fresh_db, owner) == []

    fixed = runner.invoke(cli, ["stripe", "reconcile", "--since", today, "--fix"])
    assert fixed.exit_code == 0, fixed.output
    clean = runner.invoke(cli, ["stripe", "reconcile", "--since", today])
    assert clean.exit_code == 0 and "ok" in clean.output
    assert ledger(fresh_db, owner) == [("purchase", Decimal("33.00"), Decimal("33.00"))]

    bad = runner.invoke(cli, ["stripe", "reconcile", "--since", "yesterday"])
    assert bad.exit_code == 2
    monkeypatch.delenv("HOPSPLANE_STRIPE_SECRET_KEY")
    unconfigured = runner.invoke(cli, ["stripe", "reconcile"])
    assert unconfigured.exit_code == 1 and "not configured" in unconfigured.output


@pytest.mark.stripe_unreconciled("credits Stripe never received, listed and left for a person")
def test_credits_that_stripe_never_received_are_listed_and_never_fixed(
    fresh_db: Database, gateway: StripeApi, stripe_front: StripeFront
) -> None:
    from tests.factories import committed_user, post

    owner = committed_user(fresh_db)
    pi_ok = _pay(gateway, stripe_front, owner, 1200)
    with fresh_db.transaction() as s:
        post(s, owner, "purchase", "12.00", key=f"stripe:purchase:{pi_ok}",
             stripe_payment_intent_id=pi_ok)
        post(s, owner, "purchase", "99.00", key="stripe:purchase:pi_ghost",
             stripe_payment_intent_id="pi_ghost")
    with fresh_db.transaction() as s:
        report = reconcile(s, gateway, since=None, fix=True)
    assert [(d.kind, d.payment_intent_id, d.amount, d.fixed) for d in report.discrepancies] == [
        ("unknown_to_stripe", "pi_ghost", Decimal("99.00"), False)]
    assert not report.ok


def test_reconcile_fix_records_a_stripe_refund_the_balance_cannot_cover(
    fresh_db: Database, gateway: StripeApi, stripe_front: StripeFront
) -> None:
    """Purchase 50, use 40, refund 50 in Stripe, the webhooks lost: --fix posts the purchase
    and the whole refund (the balance goes to -40 and the account is suspended), and the
    next reconcile finds nothing."""
    from tests.factories import post

    owner = committed_user(fresh_db)
    pi = _pay(gateway, stripe_front, owner, 5000)
    with fresh_db.transaction() as s:
        assert reconcile(s, gateway, since=None, fix=True).ok  # the purchase
        post(s, owner, "usage", "-40.00")
    stripe_front.refund(pi)
    with fresh_db.transaction() as s:
        listed = reconcile(s, gateway, since=None, fix=False)
    assert [(d.kind, d.amount) for d in listed.discrepancies] == [
        ("missing_refund", Decimal("50.00"))]
    with fresh_db.transaction() as s:
        fixed = reconcile(s, gateway, since=None, fix=True)
    assert fixed.ok, [(d.kind, d.fix_error) for d in fixed.discrepancies]
    assert ledger(fresh_db, owner)[-1] == ("refund", Decimal("-50.00"), Decimal("-40.00"))
    with fresh_db.transaction() as s:
        assert reconcile(s, gateway, since=None, fix=False).discrepancies == []
        assert s.execute(text("SELECT suspended FROM hopsplane.account_standing "
                              "WHERE account_owner_id = :a"), {"a": owner}).scalar_one()
