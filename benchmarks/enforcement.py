"""Enforcement latency: from the moment an account's metered cost passes its balance to
every workload of the account stopped, and the overdraft that leaves, per burn rate.

    .venv/bin/python benchmarks/enforcement.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--accounts 24] [--rates 1,6,60]

How it is computed. Each scenario runs the real chain in a scratch database: the worker
(every periodic task of `hopsplane worker`, on a clock the benchmark moves in steps of
one scrape interval, 15 s; nothing sleeps), the usage collector asking a local
Prometheus stand-in, billing, the suspension, and the Hopsworks stand-in of the tests
(src/hopsplane/devworld/hopsworks_standin.py),
which says when an account's Jupyter server and job execution
are stopped. The Prometheus stand-in answers `increase(...[window])` from a model: each
account's pod burns RATE cores ($RATE an hour at the default price) from a common start
until the stand-in stopped it; what it answers at time t is what the last scrape (the
last multiple of 15 s) saw, with no extrapolation (a real `increase` extrapolates to t,
so the model sees usage up to 15 s later than a real Prometheus would). Each account's
balance is set so that its crossing falls at a random moment (uniform over an hour for
the minute-level scenarios, over a day for the baseline), so the crossings fall at every
phase of the collection slots.

- latency = (simulated time at which the Hopsworks stand-in first reports nothing of the
  account running) - (crossing, computed from the model: the moment the metered cost,
  rounded to the cent as billing rounds it, reaches the balance); the
  simulated clock does not move while jobs run, so the time the chain itself takes is
  printed beside it, measured on the wall clock in the same run (max over the
  collection slots of tick + run_pending, i.e. collect, bill, suspend, deactivate, stop);
- overdraft = the compute used between the crossing and the stop, at the burn rate (what
  the account owes once that usage is collected and charged).

Scenarios: the default (collection every 5 minutes), a 1-minute setting
(`HOPSPLANE_USAGE_COLLECT_INTERVAL_SECONDS=60`), and the baseline measured the same way:
the collection as it was before near-real-time metering (yesterday's usage, collected
hourly) with the 15-minute billing run and no chaining.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' stand-ins

from tests.factories import add_cluster, post, signup, user

from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings, normalise_database_url
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import RUNNING, FakeHopsworks
from hopsplane.observability import configure_logging
from hopsplane.usage import rules
from hopsplane.usage.service import collect_all
from hopsplane.usage.tasks import USAGE_TASK
from hopsplane.worker.runner import Worker
from hopsplane.worker.schemas import JobContext, PeriodicTask

SCRAPE = 15  # seconds
HALF_CENT = Decimal("0.005")
BASELINE_STEP = 60  # the baseline runs two days: a coarser clock step (still << its latency)


@dataclass
class Pod:
    namespace: str
    name: str
    cores: Decimal
    start: int
    stop: int | None = None

    def used(self, t: int, window: int) -> Decimal:
        """Core-seconds in (t - window, t] as of the last scrape at or before t."""
        seen = t // SCRAPE * SCRAPE
        end = seen if self.stop is None else min(seen, self.stop)
        begin = max(t - window, self.start)
        return self.cores * max(0, end - begin)


@dataclass
class Model:
    pods: list[Pod] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, query: str, at: int) -> list[dict[str, Any]]:
        if "kube_pod_labels" in query:
            return []
        match = re.search(r"\[(\d+)s\]", query)
        window = int(match.group(1)) if match else 86_400
        with self.lock:
            return [{"metric": {"namespace": p.namespace, "pod": p.name},
                     "value": [at, str(p.used(at, window))]}
                    for p in self.pods if p.used(at, window) > 0]


@contextmanager
def model_prometheus(model: Model) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            result = model.answer(q.get("query", ""), int(float(q.get("time", "0"))))
            body = json.dumps({"status": "success",
                               "data": {"resultType": "vector", "result": result}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class SimClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _collect_yesterday(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """The baseline's collection, as it was: yesterday (UTC), whole, hourly."""
    now = ctx.clock()
    collect_all(ctx.services.database, now.date() - timedelta(days=1), now=now)


@dataclass
class Account:
    owner: str
    project: int
    rate: Decimal  # cores, i.e. dollars an hour
    crossing: int
    pod: Pod
    stopped: int | None = None


def _running(hw: FakeHopsworks, project: int) -> bool:
    with hw.state.lock:
        p = hw.state.projects[project]
        return bool(p["jupyter"]) or any(e["state"] in RUNNING for runs in p["jobs"].values()
                                         for e in runs)


def run_scenario(base_url: str, name: str, interval: int | None, rates: list[Decimal],
                 accounts: int, seed: int) -> tuple[list[Account], float]:
    """One simulated run; ``interval`` None: the baseline. Returns the accounts and the
    longest wall-clock time one step took (the chain's own duration)."""
    rng = random.Random(seed)
    db_name = f"hsp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = normalise_database_url(replace_database(base_url, db_name))
    hw = FakeHopsworks()
    model = Model()
    try:
        migrate.upgrade(url)
        settings = Settings(environment="test", secret_key="x" * 40,
                            usage_collect_interval_seconds=interval or 300)
        db = Database(url, settings)
        box = SecretBox(settings.effective_encryption_keys)
        services = schedule.services(settings, db)
        if interval is None:
            periodic = [p for p in schedule.periodic_tasks(settings) if p.task != USAGE_TASK]
            periodic.append(PeriodicTask("usage-collect-daily", timedelta(hours=1),
                                         "bench.collect_yesterday"))
            handlers = {**schedule.handlers(), "bench.collect_yesterday": _collect_yesterday}
            services = replace(services, usage_changed=None)
        else:
            periodic, handlers = schedule.periodic_tasks(settings), schedule.handlers()
        # tomorrow 00:00 UTC: after the database's now(), so every job queued is due
        start = rules.day_end(datetime.now(UTC).date())
        clock = SimClock(start - timedelta(minutes=5))
        worker = Worker(db, handlers, periodic, services=services, clock=clock)
        with model_prometheus(model) as prom_url:
            with db.transaction() as s:
                add_cluster(s, box, "bench", max_users=10 * accounts * len(rates),
                            api_url=hw.url, api_key=hw.state.api_key,
                            auth_api_key=hw.state.auth_api_key,
                            metadata={"prometheus_url": prom_url})
            spread = 86_400 if interval is None else 3_600
            first = 600 if interval is not None else 0
            made: list[Account] = []
            for rate in rates:
                for _ in range(accounts):
                    owner = signup(db)
                    worker.run_pending()
                    o = user(db, owner)
                    with db.transaction() as s:
                        namespace = s.execute(text(
                            "SELECT namespace FROM hopsplane.hopsworks_identities "
                            "WHERE user_id = :o"), {"o": owner}).scalar_one()
                    burn = first + rng.uniform(0, spread)  # seconds until the crossing
                    balance = (rate * Decimal(burn) / 3600).quantize(Decimal("0.01"))
                    with db.transaction() as s:
                        post(s, owner, "grant", str(balance))
                    # the metered cost is rounded to the cent (half up): it reaches the
                    # balance half a cent before the exact cost does
                    crossing = int(start.timestamp()) + int(
                        ((balance - HALF_CENT) * 3600 / rate).to_integral_value(ROUND_CEILING))
                    pod = Pod(namespace, f"{namespace}--{o.hopsworks_username}-abc12-xyz34",
                              rate, int(start.timestamp()))
                    model.pods.append(pod)
                    project = int(o.hopsworks_project_id or 0)
                    hw.start_jupyter(project, str(o.hopsworks_username))
                    hw.run_job(project, "etl", str(o.hopsworks_username))
                    made.append(Account(owner, project, rate, crossing, pod))
            step = BASELINE_STEP if interval is None else SCRAPE
            moment = int(start.timestamp())
            horizon = max(a.crossing for a in made) + (2 * 86_400 if interval is None else 3_600)
            slowest = 0.0
            while moment <= horizon and any(a.stopped is None for a in made):
                clock.at = datetime.fromtimestamp(moment, UTC)
                began = time.perf_counter()
                worker.tick()
                worker.run_pending()
                slowest = max(slowest, time.perf_counter() - began)
                for a in made:
                    if a.stopped is None and not _running(hw, a.project):
                        a.stopped = moment
                        with model.lock:
                            a.pod.stop = moment
                moment += step
        db.dispose()
        return made, slowest
    finally:
        hw.close()
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:7.2f}"


def report(name: str, made: list[Account], slowest: float, rates: list[Decimal]) -> None:
    print(f"\n{name}   (longest step on the wall clock: {slowest:.2f} s)")
    print(f"{'burn $/h':>9} {'n':>3} {'stopped':>8} {'min':>7} {'median':>7} {'p90':>7} "
          f"{'max':>7}  (latency, minutes)  {'worst overdraft $':>17}")
    for rate in rates:
        group = [a for a in made if a.rate == rate]
        done = [a for a in group if a.stopped is not None]
        lat = sorted((a.stopped or 0) - a.crossing for a in done)
        if not lat:
            print(f"{rate:>9} {len(group):>3} {0:>8}  never stopped within the horizon")
            continue
        p90 = lat[min(len(lat) - 1, round(0.9 * (len(lat) - 1)))]
        worst = max(rate * Decimal(x) / 3600 for x in lat)
        print(f"{rate:>9} {len(group):>3} {len(done):>8} {_minutes(lat[0])} "
              f"{_minutes(statistics.median(lat))} {_minutes(p90)} {_minutes(lat[-1])}"
              f"{'':21}{worst:>17.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--accounts", type=int, default=24, help="accounts per burn rate")
    parser.add_argument("--baseline-accounts", type=int, default=8)
    parser.add_argument("--rates", default="1,6,60", help="burn rates, dollars an hour")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, tiny data: only shows the script runs "
                        "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.accounts, args.baseline_accounts, args.rates = 1, 1, "60"
    configure_logging("ERROR", "console")
    rates = [Decimal(r) for r in args.rates.split(",")]
    for name, interval, n in (
        ("default: collection every 5 minutes", 300, args.accounts),
        ("HOPSPLANE_USAGE_COLLECT_INTERVAL_SECONDS=60", 60, args.accounts),
        ("baseline: yesterday collected hourly, billing every 15 minutes", None,
         args.baseline_accounts),
    ):
        made, slowest = run_scenario(args.url, name, interval, rates, n, args.seed)
        report(name, made, slowest, rates)


if __name__ == "__main__":
    main()
