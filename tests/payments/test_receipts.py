"""Receipts of top-ups: Checkout creates a paid invoice for every top-up, its
link is stored with the purchase when the payment is credited, and the owner finds it
next to the purchase in the API's ledger and on the console's home and ledger pages.
Purchases without one (made before receipts, or credited while Stripe could not be read)
get it from the backfill of `hopsplane stripe reconcile`."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.config import get_settings
from hopsplane.integrations.stripe import StripeApi
from hopsplane.payments.receipts import backfill
from tests.apps import Api
from tests.payments.fakes import TEST_KEY, LocalStripe, StripeFront
from tests.payments.helpers import checkout_event, cli_env, deliver, empty_stripe, paid_session

runner = CliRunner()


@pytest.fixture(autouse=True)
def _empty_stripe(localstripe: LocalStripe, stripe_front: StripeFront) -> None:
    """The backfill and reconcile read every purchase and dispute: start from an empty
    Stripe (disputes other tests of this process opened included)."""
    empty_stripe(localstripe, stripe_front)


def _top_up(web: Api, front: StripeFront, headers: dict[str, str], amount: str) -> dict[str, Any]:
    r = web.client.post("/v1/account/topups", json={"amount": amount}, headers=headers)
    assert r.status_code == 201, r.text
    return front.pay(r.json()["session_id"])


def _purchases(web: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = web.client.get("/v1/account/ledger", headers=headers)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["type"] == "purchase"]


def test_a_top_up_is_credited_with_the_link_to_its_stripe_invoice(
    web: Api, stripe_front: StripeFront
) -> None:
    owner, headers = web.new_user()
    paid = _top_up(web, stripe_front, headers, "25.00")
    form = stripe_front.checkout_requests[-1]
    assert form["invoice_creation[enabled]"] == "true"  # Checkout makes the invoice
    invoice = stripe_front.invoices[paid["invoice"]]
    for _ in range(2):  # a repeated delivery changes nothing
        r = deliver(web.client, checkout_event("checkout.session.completed", paid))
        assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    [purchase] = _purchases(web, headers)
    assert purchase["receipt_url"] == invoice["hosted_invoice_url"]
    assert purchase["receipt_pdf_url"] == invoice["invoice_pdf"]
    home = web.client.get("/console", headers=headers).text
    ledger = web.client.get("/console/ledger", headers=headers).text
    for page in (home, ledger):
        assert f'href="{invoice["hosted_invoice_url"]}"' in page
    # what is not a purchase carries no receipt
    other = web.client.get("/v1/account/ledger", headers=headers).json()["items"]
    assert all(e["receipt_url"] is None for e in other if e["type"] != "purchase")
    assert owner


def test_the_success_redirect_stores_the_receipt_too(web: Api, stripe_front: StripeFront) -> None:
    _owner, headers = web.new_user()
    paid = _top_up(web, stripe_front, headers, "10.00")
    r = web.client.get(f"/v1/account/topups/{paid['id']}/complete", headers=headers,
                       follow_redirects=False)
    assert r.status_code in (200, 303), r.text
    [purchase] = _purchases(web, headers)
    assert purchase["receipt_url"] == stripe_front.invoices[paid["invoice"]]["hosted_invoice_url"]


def test_stripe_unreadable_at_crediting_time_credits_anyway_and_the_backfill_fetches_the_link(
    web: Api, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    _owner, headers = web.new_user()
    paid = _top_up(web, stripe_front, headers, "30.00")
    stripe_front.invoices_unavailable = True
    try:
        r = deliver(web.client, checkout_event("checkout.session.completed", paid))
        assert r.json()["status"] == "processed", r.text
        [purchase] = _purchases(web, headers)
        assert purchase["amount"] == "30.00" and purchase["receipt_url"] is None
        assert "none yet" in web.client.get("/console/ledger", headers=headers).text
        with web.db.transaction() as s, pytest.raises(Exception, match="unavailable"):
            backfill(s, gateway)  # Stripe still down: the backfill stops, nothing is lost
    finally:
        stripe_front.invoices_unavailable = False
    with web.db.transaction() as s:
        report = backfill(s, gateway)
    assert (report.filled, report.missing) == (1, 0)
    [purchase] = _purchases(web, headers)
    assert purchase["receipt_url"] == stripe_front.invoices[paid["invoice"]]["hosted_invoice_url"]
    with web.db.transaction() as s:
        assert backfill(s, gateway).checked == 0  # nothing left to fetch


def test_a_purchase_from_before_receipts_gets_its_charge_receipt_from_stripe_reconcile(
    web: Api, stripe_front: StripeFront, monkeypatch: pytest.MonkeyPatch, fresh_url: str
) -> None:
    owner, headers = web.new_user()
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": stripe_front.url})
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    pi = client.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "payment_method": pm.id, "confirm": True,
        "metadata": {"hopsplane_account": owner}})
    # a Checkout Session of the days before invoice creation: no `invoice`
    r = deliver(web.client, checkout_event("checkout.session.completed",
                                           paid_session(owner, pi.id, 2000)))
    assert r.json()["status"] == "processed", r.text
    assert _purchases(web, headers)[0]["receipt_url"] is None
    assert "none yet" in web.client.get("/console", headers=headers).text

    cli_env(monkeypatch, fresh_url, stripe_front)
    try:
        out = runner.invoke(cli, ["stripe", "reconcile"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "receipts: 1 link(s) fetched" in out.output
    charge = client.v1.charges.retrieve(stripe_front.charge_of(pi.id)["id"]).to_dict()
    assert charge["receipt_url"].startswith("https://pay.stripe.com/receipts/")
    assert _purchases(web, headers)[0]["receipt_url"] == charge["receipt_url"]


def test_the_stand_in_refuses_invoice_creation_outside_payment_mode(
    stripe_front: StripeFront,
) -> None:
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": stripe_front.url})
    with pytest.raises(stripe.InvalidRequestError, match="payment mode"):
        client.v1.checkout.sessions.create(params={
            "mode": "setup", "currency": "usd", "invoice_creation": {"enabled": True},
            "success_url": "https://x.test/ok", "cancel_url": "https://x.test/no"})
