"""POST /v1/account/topups and its success redirect, against the real stripe client."""

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import StripeApi, config_from_settings
from hopsplane.payments import service
from tests.apps import act_as
from tests.factories import committed_user
from tests.payments.fakes import StripeFront
from tests.payments.helpers import (
    balance,
    checkout_event,
    deliver,
    ledger,
)


def _customer_columns(db: Database, account: str) -> tuple[str | None, str | None]:
    with db.transaction() as s:
        row = s.execute(text("SELECT stripe_customer_id, stripe_test_customer_id FROM users "
                             "WHERE id = :id"), {"id": account}).one()
    return row[0], row[1]


def test_an_owner_gets_a_checkout_session_for_their_account(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    r = app_client.post("/v1/account/topups", json={"amount": "50.00"})
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["url"].startswith("https://checkout.stripe.test/")
    assert Decimal(body["amount"]) == Decimal("50.00") and body["currency"] == "usd"
    sent = stripe_front.checkout_requests[-1]
    assert sent["mode"] == "payment"
    assert sent["client_reference_id"] == owner
    assert sent["metadata[hopsplane_account]"] == owner
    assert sent["payment_intent_data[metadata][hopsplane_account]"] == owner
    assert sent["line_items[0][price_data][unit_amount]"] == "5000"
    assert sent["success_url"] == (
        "https://console.hopsplane.test/v1/account/topups/{CHECKOUT_SESSION_ID}/complete")
    # the customer was created lazily, in test mode, and is reused
    live, test = _customer_columns(fresh_db, owner)
    assert live is None and test is not None and test.startswith("cus_")
    assert sent["customer"] == test
    app_client.post("/v1/account/topups", json={"amount": 20})
    assert stripe_front.checkout_requests[-1]["customer"] == test
    assert _customer_columns(fresh_db, owner) == (None, test)


@pytest.mark.parametrize("amount", ["4.99", "5000.01", "0", "-10", "12.345", "ten", 12.5, None,
                                    "1e999999999", "NaN", "Infinity", "5E+2"])
def test_bad_amounts_are_refused_and_nothing_is_created(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, amount: object
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    before = len(stripe_front.checkout_requests)
    r = app_client.post("/v1/account/topups", json={"amount": amount})
    assert r.status_code == 422 and r.json()["error"] == "Invalid"
    assert len(stripe_front.checkout_requests) == before
    assert _customer_columns(fresh_db, owner) == (None, None)


def test_members_cannot_top_up(app_client: TestClient, fresh_db: Database) -> None:
    owner = committed_user(fresh_db)
    member = committed_user(fresh_db, owner=owner)
    act_as(app_client, member, owner=owner)
    r = app_client.post("/v1/account/topups", json={"amount": "50.00"})
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    # the success page answers any signed-in person for a session naming their account
    # or their former one (a buyer who joined a team); any other session is unknown to them
    assert app_client.get("/v1/account/topups/cs_test_x/complete").status_code == 404
    app_client.app.state.authenticator = None  # type: ignore[attr-defined]
    del app_client.app.state.authenticator  # type: ignore[attr-defined]
    assert app_client.post("/v1/account/topups", json={"amount": "50.00"}).status_code == 401


def test_a_suspended_account_with_a_negative_balance_can_top_up(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    from tests.factories import committed_user, post

    owner = committed_user(fresh_db)
    with fresh_db.transaction() as s:
        post(s, owner, "usage", "-30.00")
    act_as(app_client, owner)
    topup = app_client.post("/v1/account/topups", json={"amount": "50.00"})
    assert topup.status_code == 201
    stripe_front.pay(topup.json()["session_id"])
    done = app_client.get(f"/v1/account/topups/{topup.json()['session_id']}/complete").json()
    assert done["credited"] and Decimal(done["balance"]) == Decimal("20.00")


def test_the_success_redirect_credits_once_and_the_webhook_then_changes_nothing(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    sid = app_client.post("/v1/account/topups", json={"amount": "75.00"}).json()["session_id"]
    early = app_client.get(f"/v1/account/topups/{sid}/complete")
    assert early.status_code == 200
    assert early.json()["credited"] is False and early.json()["payment_status"] == "unpaid"
    paid = stripe_front.pay(sid)
    for _ in range(2):
        done = app_client.get(f"/v1/account/topups/{sid}/complete").json()
        assert done["credited"] is True and Decimal(done["balance"]) == Decimal("75.00")
    r = deliver(app_client, checkout_event("checkout.session.completed", paid))
    assert r.json()["note"] == "already credited"
    assert ledger(fresh_db, owner) == [("purchase", Decimal("75.00"), Decimal("75.00"))]


def test_the_success_redirect_refuses_another_accounts_session(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    alice, bob = committed_user(fresh_db), committed_user(fresh_db)
    act_as(app_client, alice)
    sid = app_client.post("/v1/account/topups", json={"amount": "10.00"}).json()["session_id"]
    stripe_front.pay(sid)
    act_as(app_client, bob)
    r = app_client.get(f"/v1/account/topups/{sid}/complete")
    # 404 as for a session that does not exist: whether it exists is not told
    assert r.status_code == 404 and r.json() == {
        "error": "NotFound", "code": "not_found", "detail": f"no checkout session {sid!r}"}
    assert app_client.get("/v1/account/topups/cs_test_unknown/complete").status_code == 404
    assert app_client.get("/v1/account/topups/not-a-session/complete").status_code == 404
    assert balance(fresh_db, alice) == 0 and balance(fresh_db, bob) == 0
    act_as(app_client, alice)  # her own redirect credits her: Stripe and the ledger agree
    assert app_client.get(f"/v1/account/topups/{sid}/complete").json()["credited"] is True


def test_live_keys_use_the_live_customer_column(
    fresh_db: Database, stripe_settings: Settings, stripe_front: StripeFront
) -> None:
    live_settings = Settings(**{**stripe_settings.model_dump(),  # type: ignore[arg-type]
                                "stripe_secret_key": "sk_live_local", "_env_file": None})
    config = config_from_settings(live_settings)
    assert config.mode == "live"
    live = StripeApi("sk_live_local", None, config, api_base=stripe_front.url)
    owner = committed_user(fresh_db)
    with fresh_db.transaction() as s:
        customer = service.ensure_customer(s, live, owner)
    assert _customer_columns(fresh_db, owner) == (customer, None)


def test_topups_answer_503_without_stripe(fresh_db: Database, settings: Settings) -> None:
    from hopsplane.api.app import create_app

    with TestClient(create_app(settings, database=fresh_db)) as c:
        act_as(c, committed_user(fresh_db))
        r = c.post("/v1/account/topups", json={"amount": "50.00"})
    assert r.status_code == 503 and r.json()["error"] == "Unavailable"
