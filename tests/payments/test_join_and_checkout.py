"""Money follows Stripe when the buyer joins a team: a new owner opens Checkout, joins
another account, then pays. The join expires the open session (so the account named in it
never disappears under a payment), refuses while a payment is processing, and money that
reaches a closed account anyway (a session opened before that rule) is credited where its
owner went: by the webhook, the success page and ``stripe reconcile --fix`` alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.composition.hooks import register_listeners
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict
from hopsplane.hooks import LoggingHooks
from hopsplane.integrations.email import LogMailer
from hopsplane.integrations.stripe import StripeApi
from hopsplane.payments.reconcile import reconcile
from hopsplane.teams import service as teams
from tests.apps import act_as
from tests.factories import committed_user
from tests.payments.fakes import LocalStripe, StripeFront
from tests.payments.helpers import (
    checkout_event,
    cli_env,
    deliver,
    empty_stripe,
    ledger,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty(localstripe: LocalStripe, stripe_front: StripeFront) -> None:
    """Reconciliation reads every charge: start from an empty Stripe."""
    empty_stripe(localstripe, stripe_front)


def _open_checkout(client: TestClient, buyer: str, amount: str = "25.00") -> str:
    act_as(client, buyer)
    r = client.post("/v1/account/topups", json={"amount": amount})
    assert r.status_code == 201, r.json()
    return str(r.json()["session_id"])


def _join(db: Database, hooks: object, owner: str, buyer: str) -> None:
    """``buyer`` accepts ``owner``'s invite through the teams service, with ``hooks``."""
    ctx = teams.InviteContext(mailer=LogMailer(), public_url="https://x.test",
                              default_expiry_days=7)
    with db.transaction() as s:
        issued = teams.create_invite(s, ctx, owner, f"{buyer[6:]}@example.com")
    with db.transaction() as s:
        teams.accept_invite(s, hooks, buyer, f"{buyer[6:]}@example.com", True,  # type: ignore[arg-type]
                            issued.token or "")


def _member_of(db: Database, user: str) -> str | None:
    with db.transaction() as s:
        return s.execute(text("SELECT account_owner_id FROM users WHERE id = :u"),
                         {"u": user}).scalar_one()


def test_joining_expires_the_open_checkout_so_it_can_never_be_paid(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    owner, buyer = committed_user(fresh_db), committed_user(fresh_db)
    sid = _open_checkout(app_client, buyer)
    _join(fresh_db, register_listeners(LoggingHooks(), gateway), owner, buyer)
    assert _member_of(fresh_db, buyer) == owner
    assert stripe_front.sessions[sid]["status"] == "expired"
    with pytest.raises(RuntimeError, match="expired"):
        stripe_front.pay(sid)
    # a Checkout opened by someone who has joined meanwhile is refused
    act_as(app_client, buyer)  # the principal as the request began: still an owner
    r = app_client.post("/v1/account/topups", json={"amount": "25.00"})
    assert r.status_code == 409 and "joined another account" in r.json()["detail"]


def test_joining_is_refused_while_a_payment_is_processing_or_once_one_is_paid(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    owner, buyer = committed_user(fresh_db), committed_user(fresh_db)
    sid = _open_checkout(app_client, buyer)
    with stripe_front.lock:  # a bank debit: the session completes unpaid, money comes later
        stripe_front.sessions[sid].update(status="complete", payment_status="unpaid")
    hooks = register_listeners(LoggingHooks(), gateway)
    with pytest.raises(Conflict, match="still being processed"):
        _join(fresh_db, hooks, owner, buyer)
    assert _member_of(fresh_db, buyer) is None
    # paid, but the webhook has not arrived: the join credits it and is refused
    other = committed_user(fresh_db)
    paid_sid = _open_checkout(app_client, other)
    paid = stripe_front.pay(paid_sid)
    with pytest.raises(Conflict):
        _join(fresh_db, hooks, owner, other)
    assert _member_of(fresh_db, other) is None
    with fresh_db.transaction() as s:  # the join's transaction rolled back, credit too ...
        assert s.execute(text("SELECT count(*) FROM credits_ledger WHERE "
                              "stripe_payment_intent_id = :p"), {"p": paid["payment_intent"]}
                         ).scalar_one() == 0
    # ... and the webhook still credits the account that paid
    assert deliver(app_client, checkout_event("checkout.session.completed", paid)
                   ).json()["status"] == "processed"
    assert ledger(fresh_db, other) == [("purchase", Decimal("25.00"), Decimal("25.00"))]


def _joined_with_a_session_open(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> tuple[str, str, dict[str, object]]:
    """The issue's scenario as it was possible before the join expired sessions: the
    buyer opened Checkout, joined (hooks that know nothing of Stripe), then paid."""
    owner, buyer = committed_user(fresh_db), committed_user(fresh_db)
    sid = _open_checkout(app_client, buyer)
    _join(fresh_db, LoggingHooks(), owner, buyer)
    assert _member_of(fresh_db, buyer) == owner
    return owner, buyer, stripe_front.pay(sid)


def test_a_payment_for_a_closed_account_is_credited_by_the_webhook(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    owner, buyer, paid = _joined_with_a_session_open(app_client, fresh_db, stripe_front)
    r = deliver(app_client, checkout_event("checkout.session.completed", paid))
    assert r.json()["status"] == "processed", r.json()
    assert ledger(fresh_db, owner) == [("purchase", Decimal("25.00"), Decimal("25.00"))]
    with fresh_db.transaction() as s:
        description = s.execute(text("SELECT description FROM credits_ledger WHERE "
                                     "account_owner_id = :a"), {"a": owner}).scalar_one()
        assert f"paid for account {buyer}" in description
    # the success page answers the buyer (a member now, without a billing role)
    act_as(app_client, buyer, owner=owner)
    done = app_client.get(f"/v1/account/topups/{paid['id']}/complete")
    assert done.status_code == 200, done.json()
    assert done.json()["credited"] is True and done.json()["balance"] is None
    # and a person of another account is told nothing
    act_as(app_client, committed_user(fresh_db))
    assert app_client.get(f"/v1/account/topups/{paid['id']}/complete").status_code == 404
    with fresh_db.transaction() as s:
        assert reconcile(s, gateway, since=None, fix=False).discrepancies == []


def test_the_success_page_credits_a_payment_for_a_closed_account(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, buyer, paid = _joined_with_a_session_open(app_client, fresh_db, stripe_front)
    act_as(app_client, owner)  # the owner of the account the buyer joined sees the balance
    refused = app_client.get(f"/v1/account/topups/{paid['id']}/complete")
    assert refused.status_code == 404  # it names the buyer's account, not the owner's
    act_as(app_client, buyer, owner=owner)
    done = app_client.get(f"/v1/account/topups/{paid['id']}/complete")
    assert done.status_code == 200 and done.json()["credited"] is True, done.json()
    assert ledger(fresh_db, owner) == [("purchase", Decimal("25.00"), Decimal("25.00"))]
    late = deliver(app_client, checkout_event("checkout.session.completed", paid))
    assert late.json()["note"] == "already credited"


def test_reconcile_fix_credits_a_payment_for_a_closed_account(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront,
    monkeypatch: pytest.MonkeyPatch, fresh_url: str,
) -> None:
    owner, buyer, paid = _joined_with_a_session_open(app_client, fresh_db, stripe_front)
    stripe_front.refund(str(paid["payment_intent"]), 500)  # and a partial refund
    cli_env(monkeypatch, fresh_url, stripe_front)
    listed = runner.invoke(cli, ["stripe", "reconcile", "--json"])
    assert listed.exit_code == 1, listed.output
    fixed = runner.invoke(cli, ["stripe", "reconcile", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    again = runner.invoke(cli, ["stripe", "reconcile"])
    assert again.exit_code == 0 and "ok" in again.output, again.output
    assert [(k, a) for k, a, _ in ledger(fresh_db, owner)] == [
        ("purchase", Decimal("25.00")), ("refund", Decimal("-5.00"))]
    assert ledger(fresh_db, buyer) == []


def test_the_accept_route_refuses_a_join_while_a_payment_is_processing(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    """Through the API as served (the app's own hooks and Stripe client): 409 while the
    buyer's bank debit is processing, the join once Stripe has settled it otherwise."""
    from hopsplane.http.deps import Principal

    owner, buyer = committed_user(fresh_db), committed_user(fresh_db)
    sid = _open_checkout(app_client, buyer)
    with stripe_front.lock:
        stripe_front.sessions[sid].update(status="complete", payment_status="unpaid")
    ctx = teams.InviteContext(mailer=LogMailer(), public_url="https://x.test",
                              default_expiry_days=7)
    with fresh_db.transaction() as s:
        token = teams.create_invite(s, ctx, owner, f"{buyer[6:]}@example.com").token
    verified = Principal(buyer, f"{buyer[6:]}@example.com", account_owner_id=None,
                         is_platform_admin=False, email_verified=True)
    app_client.app.state.authenticator = lambda _r, _s: verified  # type: ignore[attr-defined]
    r = app_client.post("/v1/invites/accept", json={"token": token})
    assert r.status_code == 409 and "still being processed" in r.json()["detail"], r.json()
    assert _member_of(fresh_db, buyer) is None
    with stripe_front.lock:  # the debit failed: Stripe expired the session
        stripe_front.sessions[sid].update(status="expired")
    r = app_client.post("/v1/invites/accept", json={"token": token})
    assert r.status_code == 200, r.json()
    assert _member_of(fresh_db, buyer) == owner
