"""Near-real-time metering: the worker collects today so far every few minutes, each
collection that changed an account's usage has that account charged at once (not at the
next billing slot), a day's charge follows its usage by the difference (never twice), and
each day is collected whole once after it ended. Driven by the worker on a clock the test
moves, against a local server that answers like Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.usage import attribution, rules
from hopsplane.usage.tasks import FINALISE_TASK, USAGE_TASK
from hopsplane.worker.runner import Worker
from tests.factories import jobs, make_cluster, make_user, post
from tests.usage.fake_prometheus import FakePrometheus, fake_prometheus

# Tomorrow (UTC): later than the database's now(), so every job the run inserts is due on
# the test's clock.
DAY = datetime.now(UTC).date() + timedelta(days=1)


class SimClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return rules.day_start(day) + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    with fake_prometheus() as fake:
        yield fake


def _worker(db: Database, settings: Settings, clock: SimClock) -> Worker:
    """The worker with the usage collection as its only periodic task: whatever is charged
    was charged by the job the collection queued, not by the periodic billing run."""
    periodic = [p for p in schedule.periodic_tasks(settings) if p.task == USAGE_TASK]
    return Worker(db, schedule.handlers(), periodic,
                  services=schedule.services(settings, db), clock=clock)


def _account(db: Database, prom: FakePrometheus, grant: str = "10.00") -> str:
    with db.transaction() as s:
        cluster = make_cluster(s, {"prometheus_url": prom.url})
        owner = make_user(s, cluster=cluster, project_id=11, project_name="Lab")
        post(s, owner, "grant", grant)
    return owner


def _ledger(db: Database, owner: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(balance, sum of usage debits, the day's total_cost, its billed_amount)."""
    with db.transaction() as s:
        balance = credits.balance(s, owner)
        debits = s.execute(text(
            "SELECT COALESCE(-sum(amount), 0) FROM credits_ledger "
            "WHERE account_owner_id = :a AND type = 'usage'"), {"a": owner}).scalar_one()
        cost, billed = s.execute(text(
            "SELECT total_cost, billed_amount FROM usage_tracking "
            "WHERE account_owner_id = :a AND date = :d"), {"a": owner, "d": DAY}).one()
        assert credits.verify(s).ok
    return balance, Decimal(debits), Decimal(cost), Decimal(billed)


def _step(worker: Worker, clock: SimClock, moment: datetime) -> None:
    clock.at = moment
    worker.tick()
    worker.run_pending()


def _start(worker: Worker, clock: SimClock, prom: FakePrometheus, moment: datetime) -> None:
    """A first slot while Prometheus has nothing (the fake answers any time alike): the
    final collection of yesterday that it queues finds nothing either."""
    prom.values = {}
    _step(worker, clock, moment)
    prom.queries.clear()


def test_today_is_collected_so_far_and_each_change_is_charged_at_once_by_the_difference(
    fresh_db: Database, settings: Settings, prom: FakePrometheus
) -> None:
    owner = _account(fresh_db, prom)
    clock = SimClock(at(9, 55))
    worker = _worker(fresh_db, settings, clock)
    _start(worker, clock, prom, at(9, 55))

    prom.values = {"lab": "3600"}  # one CPU-hour so far: 10,000 units, $1.00
    _step(worker, clock, at(10))
    assert prom.queries[0] == {"query": attribution.cpu_by_pod_query(36_000),
                               "time": f"{at(10).timestamp():.3f}"}
    assert "[36000s]" in prom.queries[0]["query"]
    assert _ledger(fresh_db, owner) == (Decimal("9.00"), Decimal("1.00"), Decimal("1.00"),
                                        Decimal("1.00"))
    billing = [j for j in jobs(fresh_db) if j.task == "billing.bill_accounts"]
    assert [(j.status, j.args) for j in billing] == [
        ("done", {"accounts": [owner], "through": DAY.isoformat()})]

    prom.values = {"lab": "5400"}  # half an hour more: the day's charge grows by $0.50
    _step(worker, clock, at(10, 5))
    assert _ledger(fresh_db, owner)[:2] == (Decimal("8.50"), Decimal("1.50"))

    prom.queries.clear()
    _step(worker, clock, at(10, 10))  # the same answer: nothing changed, nothing queued
    assert prom.queries and len([j for j in jobs(fresh_db)
                                 if j.task == "billing.bill_accounts"]) == 2

    # Prometheus extrapolated a little less this time: the day's usage follows it, the
    # charge stays where it was (never credited back, never charged twice)
    prom.values = {"lab": "5000"}
    _step(worker, clock, at(10, 15))
    assert _ledger(fresh_db, owner) == (Decimal("8.50"), Decimal("1.50"), Decimal("1.39"),
                                        Decimal("1.50"))

    prom.values = {"lab": "7200"}  # two CPU-hours: only what goes beyond $1.50 is charged
    _step(worker, clock, at(10, 20))
    assert _ledger(fresh_db, owner) == (Decimal("8.00"), Decimal("2.00"), Decimal("2.00"),
                                        Decimal("2.00"))
    with fresh_db.transaction() as s:
        keys = [k for (k,) in s.execute(text(
            "SELECT idempotency_key FROM credits_ledger WHERE type = 'usage' ORDER BY seq"))]
    assert keys == [f"usage:{owner}:{DAY.isoformat()}:{cents}" for cents in (100, 150, 200)]
    assert {j.status for j in jobs(fresh_db)} <= {"done", "queued"}


def test_crossing_zero_between_slots_suspends_the_account_at_the_next_collection(
    fresh_db: Database, settings: Settings, prom: FakePrometheus
) -> None:
    owner = _account(fresh_db, prom, grant="1.00")
    clock = SimClock(at(8, 55))
    worker = _worker(fresh_db, settings, clock)
    _start(worker, clock, prom, at(8, 55))
    prom.values = {"lab": "1800"}
    _step(worker, clock, at(9))
    prom.values = {"lab": "3960"}  # $1.10 used: the account is $0.10 overdrawn
    _step(worker, clock, at(9, 5))
    with fresh_db.transaction() as s:
        standing = credits.standing(s, owner)
    assert standing.balance == Decimal("-0.10") and standing.suspended
    # the suspension reached the clusters domain in the billing job's transaction
    assert any(j.task == "clusters.sync_account_status" for j in jobs(fresh_db))


def test_a_day_is_collected_whole_once_after_it_ended(
    fresh_db: Database, settings: Settings, prom: FakePrometheus
) -> None:
    owner = _account(fresh_db, prom)
    clock = SimClock(at(23, 50))
    worker = _worker(fresh_db, settings, clock)
    _start(worker, clock, prom, at(23, 50))
    prom.values = {"lab": "3600"}
    _step(worker, clock, at(23, 55))
    [waiting] = [j for j in jobs(fresh_db)
                 if j.task == FINALISE_TASK and j.args == {"day": DAY.isoformat()}]
    assert waiting.status == "queued"

    next_day = DAY + timedelta(days=1)
    prom.queries.clear()
    prom.values = {"lab": "3960"}  # the last five minutes of the day, seen only whole
    _step(worker, clock, at(0, 0, next_day))  # today has no second yet: nothing to ask
    assert prom.queries == []
    clock.at = at(0, 1, next_day)  # the grace has passed: the day is collected whole
    worker.run_pending()
    assert prom.queries[0] == {"query": attribution.CPU_BY_POD_QUERY,
                               "time": f"{rules.day_end(DAY).timestamp():.3f}"}
    assert _ledger(fresh_db, owner)[:3] == (Decimal("8.90"), Decimal("1.10"), Decimal("1.10"))

    prom.queries.clear()
    for minute in (5, 10, 15):
        _step(worker, clock, at(0, minute, next_day))
    assert prom.queries and all(q["time"] != f"{rules.day_end(DAY).timestamp():.3f}"
                                for q in prom.queries)
    finals = [j for j in jobs(fresh_db) if j.task == FINALISE_TASK]
    assert sorted((j.args["day"], j.status) for j in finals) == [
        ((DAY - timedelta(days=1)).isoformat(), "done"), (DAY.isoformat(), "done"),
        (next_day.isoformat(), "queued")]


def test_the_collection_window_is_today_so_far_or_the_whole_day() -> None:
    assert rules.collection_window(DAY, at(12, 30)) == (at(12, 30), 45_000)
    assert rules.collection_window(DAY, at(12, 30) + timedelta(microseconds=999)) == (
        at(12, 30), 45_000)
    assert rules.collection_window(DAY, at(3, 0, DAY + timedelta(days=2))) == (
        rules.day_end(DAY), 86_400)
    assert rules.collection_window(DAY, rules.day_start(DAY)) == (rules.day_start(DAY), 0)
    with pytest.raises(Invalid, match="has not begun"):
        rules.collection_window(DAY, at(23, 59, DAY - timedelta(days=1)))
    assert attribution.cpu_by_pod_query(86_400) == attribution.CPU_BY_POD_QUERY


def test_the_collection_interval_is_a_setting(settings: Settings) -> None:
    every = {p.task: p.every for p in schedule.periodic_tasks(
        settings.model_copy(update={"usage_collect_interval_seconds": 60}))}
    assert every[USAGE_TASK] == timedelta(minutes=1)
    assert {p.task: p.every for p in schedule.periodic_tasks(settings)}[USAGE_TASK] == (
        timedelta(minutes=5))


def test_the_final_collection_retries_a_failing_prometheus_but_not_a_cluster_without_one(
    fresh_db: Database, settings: Settings, prom: FakePrometheus
) -> None:
    with fresh_db.transaction() as s:
        failing = make_cluster(s, {"prometheus_url": prom.url})
        agent_only = make_cluster(s, {})
    clock = SimClock(at(10))
    worker = _worker(fresh_db, settings, clock)
    prom.error = (503, "unavailable", "too many queries")
    _step(worker, clock, at(10))
    [final] = [j for j in jobs(fresh_db) if j.task == FINALISE_TASK
               and j.args == {"day": (DAY - timedelta(days=1)).isoformat()}]
    assert (final.status, final.attempts) == ("queued", 1)
    assert str(failing) in final.last_error and str(agent_only) not in final.last_error
    prom.error = None
    clock.at = at(10, 1)
    worker.run_pending()
    [final] = [j for j in jobs(fresh_db) if j.task == FINALISE_TASK
               and j.args == {"day": (DAY - timedelta(days=1)).isoformat()}]
    assert (final.status, final.attempts) == ("done", 2)
