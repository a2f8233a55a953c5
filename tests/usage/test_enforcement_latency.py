"""Prepaid means prepaid: with the default settings, every workload of an account is
stopped at most 10 minutes after its metered cost passed its balance.

The whole chain runs for real, on the worker's clock (moved by the test, never slept):
the worker's periodic usage collection asks a real Prometheus (samples every 15 s, at and
after the current time) for today so far, the collection queues the billing of the
account, the charge takes the balance below zero and suspends the account, the suspension
deactivates the Hopsworks users and stops the account's workloads on the Hopsworks
stand-in. The end is "nothing of the account runs" as the stand-in reports it.

The worst case is built in: the credit runs out one sample interval after a collection,
so the next collection, a whole interval later, is the first that can see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import RUNNING, FakeHopsworks
from hopsplane.usage import rules
from hopsplane.worker.runner import Worker
from tests.factories import add_cluster, post, signup, user
from tests.usage.real_prometheus import counter, linear, serve

STEP = 15  # seconds: the samples' interval (a 15 s scrape) and the clock's step
JUPYTER_CORES, JOB_CORES = Decimal(2), Decimal(4)  # $6 an hour at the default price
BALANCE = Decimal("1.00")
BOUND = timedelta(minutes=10)  # the promise (docs/operations.md, "Enforcement latency")
PRICE_PER_CORE_SECOND = Decimal(1) / 3600  # 10,000 units a CPU-hour at $0.0001 a unit


class SimClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _start() -> datetime:
    """A moment after the database's now() (so every job the run queues is due on the
    clock), more than 90 minutes before midnight UTC (so the run stays inside one day; the
    day boundary has tests of its own)."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    if rules.day_end(start.date()) - start < timedelta(minutes=90):
        start = rules.day_end(start.date()) + timedelta(minutes=10)
    return start


def _running(hw: FakeHopsworks, project: int) -> list[str]:
    """What the stand-in says still runs in the project."""
    with hw.state.lock:
        p = hw.state.projects[project]
        found = [f"execution {e['id']} ({e['state']})" for runs in p["jobs"].values()
                 for e in runs if e["state"] in RUNNING]
        found += [f"Jupyter of {name}" for name in p["jupyter"]]
        found += [f"deployment {d['name']}" for d in p["servings"].values()
                  if d["status"] not in ("Stopped", "Failed")]
    return found


@pytest.mark.slow
def test_every_workload_stops_within_ten_minutes_of_the_credit_running_out(
    fresh_db: Database, settings: Settings, box: SecretBox, tmp_path: Path
) -> None:
    hw = FakeHopsworks()
    try:
        clock = SimClock(_start())
        worker = Worker(fresh_db, schedule.handlers(), schedule.periodic_tasks(settings),
                        services=schedule.services(settings, fresh_db), clock=clock)
        with fresh_db.transaction() as s:
            cluster = add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key,
                                  auth_api_key=hw.state.auth_api_key)
        owner = signup(fresh_db)
        with fresh_db.transaction() as s:
            post(s, owner, "grant", str(BALANCE))
        worker.run_pending()  # provisioning: the owner's Hopsworks user and project
        o = user(fresh_db, owner)
        project, username = int(o.hopsworks_project_id or 0), str(o.hopsworks_username)
        with fresh_db.transaction() as s:
            namespace = s.execute(text(
                "SELECT namespace FROM hopsplane.hopsworks_identities WHERE user_id = :o"),
                {"o": owner}).scalar_one()

        # The credit runs out one sample after a collection slot (the worst case).
        every = settings.usage_collect_interval_seconds
        cores = JUPYTER_CORES + JOB_CORES
        burn = int(BALANCE / (cores * PRICE_PER_CORE_SECOND))  # 600 s
        first_slot = int(clock.at.timestamp()) // every * every + 3 * every
        crossing = first_slot + STEP
        started = crossing - burn
        assert started > clock.at.timestamp()
        hw.run_job(project, "etl", username)
        hw.start_jupyter(project, username)
        end = crossing + 40 * 60
        lines = counter(f'namespace="{namespace}",pod="{namespace}--{username}-6d4b8c7f9-x7k2p",'
                        'container="main",image="jupyter"',
                        linear(started, end, JUPYTER_CORES, STEP))
        lines += counter(f'namespace="{namespace}",pod="etl-driver",container="spark",'
                         'image="spark"', linear(started, end, JOB_CORES, STEP))
        with serve(tmp_path, lines) as prometheus_url:
            with fresh_db.transaction() as s:
                s.execute(text(
                    "UPDATE hopsworks_clusters SET metadata = metadata || "
                    "jsonb_build_object('prometheus_url', CAST(:u AS text)) WHERE id = :c"),
                    {"u": prometheus_url, "c": cluster.id})
            assert _running(hw, project)
            stopped_at: int | None = None
            moment = int(clock.at.timestamp()) // STEP * STEP + STEP
            while moment <= crossing + 2 * int(BOUND.total_seconds()):
                clock.at = datetime.fromtimestamp(moment, UTC)
                worker.tick()
                worker.run_pending()
                if not _running(hw, project):
                    stopped_at = moment
                    break
                moment += STEP
        assert stopped_at is not None, f"still running: {_running(hw, project)}"
        latency = timedelta(seconds=stopped_at - crossing)
        # nothing was stopped before the credit ran out, and everything within the bound
        assert timedelta(0) < latency <= BOUND, latency
        with fresh_db.transaction() as s:
            standing = credits.standing(s, owner)
            assert credits.verify(s).ok
        assert standing.suspended and standing.balance <= 0
        # the overdraft is the compute used between the crossing and the charge that saw it
        assert -standing.balance <= cores * PRICE_PER_CORE_SECOND * Decimal(every)
        assert {u["status"] for u in hw.state.users.values()} == {"DEACTIVATED_ACCOUNT"}
    finally:
        hw.close()
