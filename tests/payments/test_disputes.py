"""Stripe disputes in the ledger: a chargeback posts a `dispute` entry (it may
overdraw and suspend), a won dispute a `dispute_reversal`, each once whatever the order or
number of deliveries; `stripe reconcile` finds and posts the missing ones."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.config import get_settings
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.integrations.email import LogMailer
from hopsplane.integrations.stripe import StripeApi
from hopsplane.payments.reconcile import reconcile
from tests.apps import act_as
from tests.factories import committed_user, notice_jobs, post, send_notices
from tests.payments.fakes import TEST_KEY, LocalStripe, StripeFront, stripe_event
from tests.payments.helpers import balance, deliver, empty_stripe, ledger, paid_through_checkout

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty(localstripe: LocalStripe, stripe_front: StripeFront) -> None:
    """Reconciliation reads every charge and dispute: start from an empty Stripe."""
    empty_stripe(localstripe, stripe_front)


def _standing(db: Database, owner: str) -> tuple[Decimal, bool]:
    with db.transaction() as s:
        st = credits.standing(s, owner)
        assert credits.verify(s, owner).ok
    return st.balance, st.suspended


def test_a_dispute_overdraws_suspends_and_is_posted_once_per_dispute(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="20.00")
    with fresh_db.transaction() as s:
        post(s, owner, "usage", "-15.00")
    dp = stripe_front.dispute(pi)
    created = stripe_event("charge.dispute.created", dp)
    r = deliver(app_client, created)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.json()
    assert deliver(app_client, created).json()["status"] == "duplicate"
    # other events about the same dispute (another delivery path) change nothing
    for kind in ("charge.dispute.funds_withdrawn", "charge.dispute.updated"):
        assert deliver(app_client, stripe_event(kind, dp)).json()["status"] == "processed"
    assert ledger(fresh_db, owner)[-1] == ("dispute", Decimal("-20.00"), Decimal("-15.00"))
    assert [t for t, _, _ in ledger(fresh_db, owner)].count("dispute") == 1
    assert _standing(fresh_db, owner) == (Decimal("-15.00"), True)


def test_a_won_dispute_is_reversed_once_and_lifts_the_suspension(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="30.00")
    dp = stripe_front.dispute(pi)
    deliver(app_client, stripe_event("charge.dispute.created", dp))
    assert _standing(fresh_db, owner) == (Decimal("0.00"), True)
    won = stripe_front.close_dispute(dp["id"], "won")
    for kind in ("charge.dispute.closed", "charge.dispute.funds_reinstated",
                 "charge.dispute.closed"):
        assert deliver(app_client, stripe_event(kind, won)).json()["status"] == "processed"
    assert ledger(fresh_db, owner) == [
        ("purchase", Decimal("30.00"), Decimal("30.00")),
        ("dispute", Decimal("-30.00"), Decimal("0.00")),
        ("dispute_reversal", Decimal("30.00"), Decimal("30.00")),
    ]
    assert _standing(fresh_db, owner) == (Decimal("30.00"), False)
    # the owner is told of each entry once, however many deliveries there were
    kinds = [j.args["kind"] for j in notice_jobs(fresh_db) if j.args["account"] == owner
             and j.args["kind"].startswith("dispute")]
    assert kinds == ["dispute_opened", "dispute_won"]
    mailer = LogMailer()
    send_notices(fresh_db, mailer)
    subjects = [m.subject for m in mailer.sent if "dispute" in m.subject]
    assert subjects == ["hopsplane: a payment of $30.00 is disputed",
                        "hopsplane: the dispute of $30.00 was won, credit restored"]


def test_closed_as_won_before_created_still_ends_correct(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="25.00")
    dp = stripe_front.dispute(pi, amount=1000)
    won = stripe_front.close_dispute(dp["id"], "won")
    assert deliver(app_client, stripe_event("charge.dispute.closed", won)).json()[
        "status"] == "processed"
    # the late `created` (its payload still says needs_response) posts nothing more
    assert deliver(app_client, stripe_event("charge.dispute.created", dp)).json()[
        "status"] == "processed"
    assert [(t, a) for t, a, _ in ledger(fresh_db, owner)] == [
        ("purchase", Decimal("25.00")), ("dispute", Decimal("-10.00")),
        ("dispute_reversal", Decimal("10.00"))]
    assert balance(fresh_db, owner) == Decimal("25.00")


def test_a_lost_dispute_stays_and_an_inquiry_moves_nothing(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="40.00")
    inquiry = stripe_front.dispute(pi, status="warning_needs_response")
    r = deliver(app_client, stripe_event("charge.dispute.created", inquiry))
    assert r.json()["status"] == "processed"
    assert balance(fresh_db, owner) == Decimal("40.00")
    dp = stripe_front.dispute(pi, amount=1500)
    lost = stripe_front.close_dispute(dp["id"], "lost")
    deliver(app_client, stripe_event("charge.dispute.closed", lost))
    assert [(t, a) for t, a, _ in ledger(fresh_db, owner)][1:] == [
        ("dispute", Decimal("-15.00"))]


def test_a_dispute_of_a_payment_not_yet_credited_credits_it_first(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    topup = app_client.post("/v1/account/topups", json={"amount": "50.00"}).json()
    paid = stripe_front.pay(topup["session_id"])  # the purchase webhook never came
    dp = stripe_front.dispute(paid["payment_intent"])
    deliver(app_client, stripe_event("charge.dispute.created", dp))
    assert [(t, a) for t, a, _ in ledger(fresh_db, owner)] == [
        ("purchase", Decimal("50.00")), ("dispute", Decimal("-50.00"))]


def test_reconcile_lists_then_posts_missing_disputes_and_reversals(
    app_client: TestClient, fresh_db: Database, gateway: StripeApi, stripe_front: StripeFront
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="60.00")
    dp = stripe_front.dispute(pi, amount=2000)
    stripe_front.close_dispute(dp["id"], "won")
    other = stripe_front.dispute(pi, amount=500)  # no event was ever delivered for either
    with fresh_db.transaction() as s:
        report = reconcile(s, gateway, since=None, fix=False)
    kinds = sorted(d.kind for d in report.discrepancies)
    assert report.disputes_seen == 2
    assert kinds == ["missing_dispute", "missing_dispute", "missing_dispute_reversal"]
    assert balance(fresh_db, owner) == Decimal("60.00")
    with fresh_db.transaction() as s:
        fixed = reconcile(s, gateway, since=datetime.now(UTC) - timedelta(days=1), fix=True)
    assert fixed.ok and len(fixed.discrepancies) == 3
    assert balance(fresh_db, owner) == Decimal("55.00")  # 60 - 20 + 20 - 5
    with fresh_db.transaction() as s:
        assert reconcile(s, gateway, since=None, fix=False).discrepancies == []
    # a webhook arriving after the fix posts nothing more
    deliver(app_client, stripe_event("charge.dispute.created", other))
    assert balance(fresh_db, owner) == Decimal("55.00")


def test_the_cli_reconciles_disputes(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                         amount="10.00")
    stripe_front.dispute(pi)
    monkeypatch.setenv("HOPSPLANE_STRIPE_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("HOPSPLANE_STRIPE_API_BASE", stripe_front.url)
    get_settings.cache_clear()
    listed = runner.invoke(cli, ["stripe", "reconcile"])
    assert listed.exit_code == 1 and "missing_dispute" in listed.output, listed.output
    fixed = runner.invoke(cli, ["stripe", "reconcile", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert balance(fresh_db, owner) == Decimal("0.00")
