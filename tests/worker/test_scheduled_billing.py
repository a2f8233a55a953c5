"""The worker's schedule charges usage: the billing run is a periodic job like any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from hopsplane.billing.rules import today_utc
from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.worker.runner import Worker
from tests.factories import make_user, post, upsert_usage


def test_a_worker_tick_bills_usage_and_a_second_slot_charges_nothing_twice(
    fresh_db: Database, settings: Settings
) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
        post(s, acct, "grant", "100.00")
        upsert_usage(s, acct, today_utc(), "123450")  # $12.345 -> $12.35
    worker = Worker(fresh_db, schedule.handlers(), schedule.periodic_tasks(),
                    services=schedule.services(settings, fresh_db))
    assert worker.tick() == len(schedule.periodic_tasks())
    # and the final collection of yesterday, which the usage collection queued
    assert worker.run_pending() == len(schedule.periodic_tasks()) + 1
    with fresh_db.transaction() as s:
        assert credits.balance(s, acct) == Decimal("87.65")
        upsert_usage(s, acct, today_utc(), "133450")  # late usage: +$1.00
    assert worker.tick() == 0  # same slot: nothing new is scheduled
    later = datetime.now(UTC) + timedelta(days=2)  # every periodic task is due again
    worker.clock = lambda: later
    assert worker.tick() == len(schedule.periodic_tasks())
    worker.run_pending()
    with fresh_db.transaction() as s:
        assert credits.balance(s, acct) == Decimal("86.65")
        usage_debits = s.execute(text(
            "SELECT count(*) FROM credits_ledger WHERE type = 'usage'")).scalar_one()
        assert usage_debits == 2
        assert credits.verify(s).ok
