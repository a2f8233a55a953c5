"""The billing run against committed data (each test has its own database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text

from hopsplane.billing import service as billing
from hopsplane.billing.run import run_billing
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict
from hopsplane.integrations.email import LogMailer
from tests.factories import RecordingHooks, make_user, post, send_notices, upsert_usage, usage_row

D1, D2, D3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


def _run(db: Database, through: date = D3, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("hooks", RecordingHooks())
    return run_billing(db, through, **kw)  # type: ignore[arg-type]


def _debits(db: Database, account: str) -> list[Decimal]:
    with db.transaction() as s:
        return [e.amount for e in reversed(credits.history(s, account, limit=500))
                if e.type.value == "usage"]


def test_charges_each_day_once_and_late_usage_as_the_difference(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "purchase", "100.00")
        upsert_usage(s, a, D1, "12345")  # 1.2345 -> 1.23
        upsert_usage(s, a, D2, "50000")  # 5.00
    r = _run(fresh_db)
    assert (r.postings, r.amount, r.failures) == (2, Decimal("6.23"), [])
    assert _run(fresh_db).postings == 0  # a repeat posts nothing
    with fresh_db.transaction() as s:
        upsert_usage(s, a, D1, "20000")  # late usage: the day now costs 2.00
    r = _run(fresh_db)
    assert (r.postings, r.amount) == (1, Decimal("0.77"))
    assert _debits(fresh_db, a) == [Decimal("-1.23"), Decimal("-5.00"), Decimal("-0.77")]
    with fresh_db.transaction() as s:
        assert usage_row(s, a, D1)[2] == Decimal("2.00")
        assert credits.balance(s, a) == Decimal("93.00")
        assert credits.verify(s).ok


def test_through_limits_the_days_charged(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        upsert_usage(s, a, D1, "10000")
        upsert_usage(s, a, D3, "10000")
    assert _run(fresh_db, through=D2).amount == Decimal("1.00")
    assert _run(fresh_db, through=D3).amount == Decimal("1.00")


def test_one_failing_account_is_reported_and_the_others_are_charged(
    fresh_db: Database,
) -> None:
    with fresh_db.transaction() as s:
        good1, bad, good2 = sorted(make_user(s) for _ in range(3))
        for acct in (good1, bad, good2):
            upsert_usage(s, acct, D1, "10000")
        # the bad account's debit key is already taken by a different entry: Conflict
        post(s, bad, "grant", "5.00", key=f"usage:{bad}:{D1.isoformat()}:100")
    r = _run(fresh_db)
    assert [f.account_owner_id for f in r.failures] == [bad]
    assert "Conflict" in r.failures[0].error
    assert _debits(fresh_db, good1) == [Decimal("-1.00")]
    assert _debits(fresh_db, good2) == [Decimal("-1.00")]
    assert _debits(fresh_db, bad) == []
    with fresh_db.transaction() as s:
        assert usage_row(s, bad, D1)[2] == Decimal("0.00")  # not marked billed


def test_notices_suspension_and_resumption_through_the_run(fresh_db: Database) -> None:
    """The run's postings queue their notices with their batch; the worker sends them.
    A suspension a posting without hooks caused is announced by its queued job."""
    hooks, mailer = RecordingHooks(), LogMailer()
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "purchase", "12.00")
        upsert_usage(s, a, D1, "50000")  # 5.00 -> balance 7: under 10
    r = _run(fresh_db, hooks=hooks)
    assert r.notices == 1 and not mailer.sent  # queued, not sent by the run
    assert send_notices(fresh_db, mailer) == 1
    assert [m.subject for m in mailer.sent] == ["hopsplane: your balance is at or below $10.00"]
    assert _run(fresh_db, hooks=hooks).notices == 0  # once per crossing
    assert send_notices(fresh_db, mailer) == 0
    with fresh_db.transaction() as s:
        upsert_usage(s, a, D2, "80000")  # 8.00 -> balance -1: suspended
    _run(fresh_db, hooks=hooks)
    assert hooks.events == [("account_suspended", a)]  # in the batch's transaction
    send_notices(fresh_db, mailer, hooks=hooks)
    assert len(mailer.sent) == 2  # the $0 threshold (crossing 1 and 0 at once: one notice)
    with fresh_db.transaction() as s:  # a purchase through post() without hooks
        post(s, a, "purchase", "20.00")
        assert not credits.standing(s, a).suspended
    assert hooks.events == [("account_suspended", a)]
    send_notices(fresh_db, mailer, hooks=hooks)  # the queued announcement
    assert hooks.events == [("account_suspended", a), ("account_resumed", a)]
    send_notices(fresh_db, mailer, hooks=hooks)
    _run(fresh_db, hooks=hooks)
    assert hooks.events == [("account_suspended", a), ("account_resumed", a)]


def test_price_override_applies_from_its_date(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        upsert_usage(s, a, D1, "10000")
        upsert_usage(s, a, D2, "10000")
        billing.set_price_override(s, a, D2, "0.0002", reason="contract")
        upsert_usage(s, a, D3, "10000")  # written after: takes the override too
        assert [usage_row(s, a, d)[1] for d in (D1, D2, D3)] == [
            Decimal("1.00"), Decimal("2.00"), Decimal("2.00")]
    assert _run(fresh_db).amount == Decimal("5.00")
    with fresh_db.transaction() as s, pytest.raises(Conflict, match="already charged"):
        billing.set_price_override(s, a, D3, "0.0003", reason="too late")
    with fresh_db.transaction() as s:
        assert usage_row(s, a, D3)[0] == Decimal("0.0002")


def test_billed_amount_cannot_go_negative(fresh_db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with fresh_db.transaction() as s:
        a = make_user(s)
        upsert_usage(s, a, D1, "1")
    with pytest.raises(IntegrityError), fresh_db.transaction() as s:
        s.execute(text("UPDATE usage_tracking SET billed_amount = -1"))


def test_a_day_row_being_folded_is_skipped_not_waited_for(fresh_db: Database) -> None:
    """A transaction holding a usage row (as a usage fold does) neither blocks the run nor
    loses the charge: the run charges the other rows, and the next one charges that row."""
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "purchase", "100.00")
        upsert_usage(s, a, D1, "10000")  # 1.00
        upsert_usage(s, a, D2, "20000")  # 2.00
    holder = fresh_db.sessions()
    holder.begin()
    holder.execute(text("SELECT 1 FROM usage_tracking WHERE account_owner_id = :a "
                        "AND date = :d FOR UPDATE"), {"a": a, "d": D2})
    try:
        first = _run(fresh_db)  # with FOR UPDATE (no SKIP LOCKED) this waits forever
        assert (first.postings, first.amount, first.failures) == (1, Decimal("1.00"), [])
    finally:
        holder.rollback()
        holder.close()
    second = _run(fresh_db)
    assert (second.postings, second.amount) == (1, Decimal("2.00"))
    assert _debits(fresh_db, a) == [Decimal("-1.00"), Decimal("-2.00")]


def test_a_long_backlog_is_charged_in_bounded_slices_within_one_run(
    fresh_db: Database,
) -> None:
    """An account with thousands of unbilled days (an agent reported any past date) is
    charged slice by slice, each slice its own bounded transaction, oldest days first, and
    the accounts after it in the same batch are charged in the same run."""
    with fresh_db.transaction() as s:
        big, small1, small2 = sorted(make_user(s) for _ in range(3))
        post(s, big, "purchase", "5000.00")
        s.execute(text(
            "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
            "SELECT CAST(:a AS text), d::date, 10000, jsonb_build_object(CAST(:a AS text), '10000') "
            "FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') d"),
            {"a": big, "first": date(2018, 1, 1), "last": date(2026, 3, 19)})
        for acct in (small1, small2):
            upsert_usage(s, acct, D1, "10000")
    r = _run(fresh_db, batch_size=3, slice_days=250)
    assert r.failures == [] and r.accounts == 3
    assert r.postings == 3000 + 2 and r.amount == Decimal("3002.00")
    with fresh_db.transaction() as s:
        left = s.execute(text("SELECT count(*) FROM usage_tracking "
                              "WHERE total_cost > billed_amount")).scalar_one()
        # entries of one transaction share its now(): no transaction took more than a
        # slice of one account
        per_transaction = s.execute(text(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM credits_ledger "
            "WHERE type = 'usage' GROUP BY account_owner_id, created_at) t")).scalar_one()
        first_slice = s.execute(text(
            "SELECT max(description) FROM credits_ledger WHERE account_owner_id = :a "
            "AND type = 'usage' AND created_at = (SELECT min(created_at) FROM credits_ledger "
            "WHERE account_owner_id = :a AND type = 'usage')"), {"a": big}).scalar_one()
        assert credits.balance(s, big) == Decimal("2000.00")
        assert credits.verify(s).ok
    assert left == 0
    assert per_transaction <= 250
    assert "2018" in first_slice  # the oldest days first
    assert _run(fresh_db, slice_days=250).postings == 0
