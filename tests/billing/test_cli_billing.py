"""Operator commands of credits and billing, run in-process as an operator would."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.payments.schemas import Payment
from hopsplane.payments.service import fulfil_payment
from tests.factories import make_user, post, upsert_usage

runner = CliRunner()


@pytest.fixture
def env(env: str, fresh_db: Database) -> Database:
    return fresh_db


def test_an_operator_key_naming_a_stripe_payment_cannot_stop_that_payment(env: Database) -> None:
    """`credits grant ... --key stripe:purchase:pi_123` once made the later webhook for
    pi_123 a Conflict, and the customer's payment was never credited."""
    with env.transaction() as s:
        owner = make_user(s)
    g = runner.invoke(app, ["credits", "grant", owner, "5.00", "-r", "goodwill",
                            "--key", "stripe:purchase:pi_123"])
    assert g.exit_code == 0, g.output
    with env.transaction() as s:
        paid = fulfil_payment(s, Payment(owner, "pi_123", Decimal("20.00"), "usd"))
        assert paid.created and paid.entry.type == "purchase"
        assert credits.balance(s, owner) == Decimal("25.00")
        keys = sorted(e.idempotency_key for e in credits.history(s, owner))
    assert keys == ["operator:grant:stripe:purchase:pi_123", "stripe:purchase:pi_123"]


def test_grant_and_refund_need_a_reason_and_record_it(env: Database) -> None:
    with env.transaction() as s:
        owner = make_user(s)
        purchase = post(s, owner, "purchase", "20.00").entry.id
    assert runner.invoke(app, ["credits", "grant", owner, "5.00"]).exit_code != 0
    g = runner.invoke(app, ["credits", "grant", owner, "5.00", "--reason", "trial", "--key", "k1"])
    assert g.exit_code == 0, g.output
    again = runner.invoke(app, ["credits", "grant", owner, "5.00", "-r", "trial", "--key", "k1"])
    assert "already posted" in again.output
    r = runner.invoke(app, ["credits", "refund", owner, str(purchase), "30.00", "-r", "x"])
    assert r.exit_code == 1 and "exceeds what is left" in r.output
    r = runner.invoke(app, ["credits", "refund", owner, "not-a-uuid", "1.00", "-r", "x"])
    assert r.exit_code == 1 and "UUID" in r.output
    r = runner.invoke(app, ["credits", "refund", owner, str(purchase), "8.00", "-r", "asked"])
    assert r.exit_code == 0, r.output
    with env.transaction() as s:
        history = credits.history(s, owner)
        assert credits.balance(s, owner) == 17
    assert history[0].description and "asked" in history[0].description
    assert history[1].description == "grant: trial (by cli)"


def test_billing_run_set_price_and_failures(env: Database) -> None:
    with env.transaction() as s:
        owner = make_user(s)
        upsert_usage(s, owner, date(2026, 11, 2), "10000")
    p = runner.invoke(app, ["billing", "set-price", owner, "0.0002", "--from", "2026-11-02",
                            "--reason", "deal"])
    assert p.exit_code == 0, p.output
    r = runner.invoke(app, ["billing", "run", "--through", "2026-11-30"])
    assert r.exit_code == 0, r.output
    assert "1 debits totalling 2.00" in r.output
    assert "0 debits" in runner.invoke(app, ["billing", "run", "--through", "2026-11-30"]).output
    bad = runner.invoke(app, ["billing", "run", "--through", "30/11"])
    assert bad.exit_code == 1 and "date like" in bad.output
    with env.transaction() as s:
        s.execute(text("UPDATE usage_tracking SET compute_units = 20000, "
                       "user_breakdown = jsonb_build_object(account_owner_id, 20000)"))
        other = make_user(s)
        upsert_usage(s, other, date(2026, 11, 2), "10000")
        post(s, other, "grant", "1.00", key=f"usage:{other}:2026-11-02:100")  # a taken key
    r = runner.invoke(app, ["billing", "run", "--through", "2026-11-30"])
    assert r.exit_code == 1 and other in r.output and "1 account(s) failed" in r.output
    assert "1 debits totalling 2.00" in r.output  # the late usage of the first account
    assert "queued" in r.output  # notices are jobs: the worker sends them
