"""Shared steps of the payments tests."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.config import get_settings
from hopsplane.db.engine import Database
from tests.apps import act_as
from tests.factories import committed_user
from tests.payments.fakes import TEST_KEY, LocalStripe, StripeFront, sign, stripe_event


def empty_stripe(localstripe: LocalStripe, front: StripeFront) -> None:
    """Start from an empty Stripe: localstripe's store and the front's disputes (for the
    tests that read every charge or dispute, like reconciliation)."""
    httpx.delete(f"{localstripe.url}/_config/data").raise_for_status()
    front.disputes.clear()


def deliver(client: TestClient, event: dict[str, Any], **sign_kwargs: Any) -> Any:
    body, header = sign(event, **sign_kwargs)
    return client.post("/v1/stripe/webhook", content=body,
                       headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def checkout_event(type_: str, checkout: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return stripe_event(type_, checkout, **kwargs)


def paid_session(account: str, pi: str, amount_minor: int, *, status: str = "paid"
                 ) -> dict[str, Any]:
    """A Checkout Session as Stripe puts it in events (no Stripe call needed)."""
    return {
        "id": "cs_test_" + uuid.uuid4().hex, "object": "checkout.session", "mode": "payment",
        "payment_status": status, "status": "complete", "payment_intent": pi,
        "client_reference_id": account, "metadata": {"hopsplane_account": account},
        "amount_total": amount_minor, "currency": "usd", "livemode": False,
    }


def ledger(db: Database, account: str) -> list[tuple[str, Decimal, Decimal]]:
    with db.transaction() as s:
        rows = s.execute(text(
            "SELECT type, amount, balance FROM credits_ledger WHERE account_owner_id = :a "
            "ORDER BY seq"), {"a": account}).all()
    return [(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows]


def balance(db: Database, account: str) -> Decimal:
    rows = ledger(db, account)
    return rows[-1][2] if rows else Decimal("0.00")


def stored_events(db: Database) -> dict[str, tuple[str, str | None]]:
    with db.transaction() as s:
        rows = s.execute(text("SELECT id, status, error FROM hopsplane.stripe_events")).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def count(db: Database, sql: str) -> int:
    with db.transaction() as s:
        return int(s.execute(text(sql)).scalar_one())


def paid_through_checkout(
    client: TestClient, db: Database, front: StripeFront, *, owner: str | None, amount: str
) -> tuple[str, str, str]:
    """Top up through the API, pay on 'Stripe', deliver checkout.session.completed."""
    owner = owner or committed_user(db)
    act_as(client, owner)
    topup = client.post("/v1/account/topups", json={"amount": amount})
    assert topup.status_code == 201, topup.json()
    paid = front.pay(topup.json()["session_id"])
    r = deliver(client, checkout_event("checkout.session.completed", paid))
    assert r.json()["status"] == "processed"
    charge = front.charge_of(paid["payment_intent"])
    return owner, paid["payment_intent"], charge["id"]


def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, front: StripeFront) -> None:
    """The environment `hopsplane stripe …` commands read: this database and the local
    Stripe (the settings cache is cleared so that they are read again)."""
    for name, value in {
        "HOPSPLANE_DATABASE_URL": database_url, "HOPSPLANE_ENVIRONMENT": "development",
        "HOPSPLANE_STRIPE_SECRET_KEY": TEST_KEY, "HOPSPLANE_STRIPE_API_BASE": front.url,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
