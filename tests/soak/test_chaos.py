"""Chaos soak: three `hopsplane serve` and three `hopsplane worker` processes on one
PostgreSQL, driven at once by reads, usage-event batches (with duplicates), signed Stripe
webhook deliveries (with repeats) and billing runs, while random server and worker
processes are killed with SIGKILL and replaced. About a minute on the 2-core machine.

At the end: `credits verify` passes, every unique usage event is counted once, every
purchase is credited once, every job ran to completion once in effect (all done, every
usage row charged exactly its cost), no session is idle in transaction, and the surviving
processes answer normally.

Clients behave like a client behind a load balancer: a refused or reset connection, or a
503, is tried again (on another replica, after a short wait). Every write they retry is
idempotent by its key (event ids, Stripe event ids), which is what makes retrying safe."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from hopsplane.billing.tasks import BILLING_TASK
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.usage.rules import token_hash
from tests.factories import post, session_cookie_for
from tests.live_server import free_port, wait_until_ready
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront, sign, stripe_event
from tests.payments.helpers import paid_session

ROOT = Path(__file__).resolve().parents[2]
SECRET = "soak-secret-key-0123456789-0123456789-soak"
ENCRYPTION_KEY = "dGVzdC1rZXktZm9yLWhvcHNwbGFuZS10ZXN0cy0zMmI="
CHAOS_SECONDS = 25.0
ACCOUNTS = 12
TODAY = datetime.now(UTC).date()

pytestmark = pytest.mark.slow


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Fleet:
    """The processes under test, replaced when killed."""

    url: str
    stripe_url: str
    log_dir: Path
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # port -> proc
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
        return env | {
            "HOPSPLANE_DATABASE_URL": self.url, "HOPSPLANE_ENVIRONMENT": "test",
            "HOPSPLANE_SECRET_KEY": SECRET, "HOPSPLANE_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "HOPSPLANE_AUTH_DEV_ISSUER": "false", "HOPSPLANE_AUTH0_DOMAIN": "soak.invalid",
            "HOPSPLANE_AUTH0_AUDIENCE": "https://soak.invalid/",
            "HOPSPLANE_STRIPE_SECRET_KEY": TEST_KEY,
            "HOPSPLANE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HOPSPLANE_STRIPE_API_BASE": self.stripe_url,
            "HOPSPLANE_LOG_LEVEL": "WARNING", "HOPSPLANE_LOG_FORMAT": "json",
            "HOPSPLANE_DB_POOL_SIZE": "4", "HOPSPLANE_DB_MAX_OVERFLOW": "2",
            "HOPSPLANE_WORKER_LEASE_SECONDS": "2", "HOPSPLANE_WORKER_POLL_INTERVAL_SECONDS": "0.5",
        }

    def _log(self, name: str) -> Any:
        return (self.log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log").open("wb")

    def start_server(self, port: int) -> None:
        with self._log(f"serve-{port}") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hopsplane", "serve", "--no-upgrade", "--workers", "1",
                 "--port", str(port)], env=self.env(), cwd=ROOT, stdout=log, stderr=log)
        self.servers[port] = proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        with self._log("worker") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hopsplane", "worker", "--concurrency", "2"],
                env=self.env(), cwd=ROOT, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.servers.items() if proc.poll() is None]

    def kill_one(self, rng: random.Random) -> None:
        with self.lock:
            if rng.random() < 0.5:
                port = rng.choice(list(self.servers))
                self.servers[port].send_signal(signal.SIGKILL)
                self.servers[port].wait()
                self.kills.append(f"serve:{port}")
                self.start_server(port)
            else:
                victim = rng.choice([w for w in self.workers if w.poll() is None])
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                self.workers.remove(victim)
                self.kills.append("worker")
                self.start_worker()

    def stop_all(self) -> None:
        for proc in [*self.servers.values(), *self.workers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.servers.values(), *self.workers]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(ports: list[int], deadline_s: float = 60) -> None:
    for port in ports:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", deadline_s)


def _send(fleet: Fleet, method: str, path: str, *, content: bytes = b"",
          headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
          give_up: float = 60.0) -> httpx.Response:
    """Until a replica answers something other than 503: what a client behind a load
    balancer sees. Connection errors (a replica killed mid-request) are retried too."""
    deadline = time.monotonic() + give_up
    rng = random.Random()
    while True:
        ports = fleet.live_ports()
        if ports:
            port = rng.choice(ports)
            try:
                r = httpx.request(method, f"http://127.0.0.1:{port}{path}", content=content,
                                  headers=headers, cookies=cookies, timeout=10)
                if r.status_code != 503:
                    return r
                assert r.headers.get("retry-after"), "a 503 without Retry-After"
                assert set(r.json()) == {"error", "detail"}
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {path}: no replica answered in {give_up} s")
        time.sleep(0.05 + rng.random() * 0.1)


def _seed(url: str, hopsworks_url: str) -> tuple[list[str], str]:
    owners = [f"auth0|soak{i:03d}" for i in range(ACCOUNTS)]
    token = "hpu_" + uuid.uuid4().hex + uuid.uuid4().hex
    box = SecretBox([ENCRYPTION_KEY])
    with psycopg.connect(_plain(url)) as conn:
        for o in owners:
            conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)", (o, f"{o[6:]}@x.io"))
        cluster = conn.execute(
            "INSERT INTO hopsworks_clusters (name, api_url, api_key, max_users) VALUES "
            "('soak', %s, %s, 100) RETURNING id",
            (hopsworks_url, box.encrypt("hw-secret-key"))).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
                     "SELECT id, %s FROM users", (cluster,))
        conn.execute("INSERT INTO hopsplane.usage_ingest_tokens (cluster_id, token_sha256) "
                     "VALUES (%s, %s)", (cluster, token_hash(token)))
    db = Database(url)
    with db.transaction() as s:  # enough credit that no account is suspended by charges
        for o in owners:
            post(s, o, "grant", "1000.00")
    db.dispose()
    return owners, token


def _query(url: str, sql: str, *params: Any) -> list[Any]:
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def _in_threads(*targets: Callable[[], None]) -> Iterator[threading.Thread]:
    for target in targets:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        yield t


@pytest.fixture
def hopsworks() -> Iterator[FakeHopsworks]:
    server = FakeHopsworks()  # the workers provision the accounts on it (reconcile jobs)
    yield server
    server.close()


def test_chaos_soak(
    fresh_url: str, stripe_front: StripeFront, hopsworks: FakeHopsworks, tmp_path: Path
) -> None:
    started = time.monotonic()
    owners, ingest_token = _seed(fresh_url, hopsworks.url)
    fleet = Fleet(fresh_url, stripe_front.url, tmp_path)
    ports = [free_port() for _ in range(3)]
    try:
        for port in ports:
            fleet.start_server(port)
        for _ in range(3):
            fleet.start_worker()
        _wait_ready(ports)
        errors: list[str] = []
        stop = threading.Event()
        rng = random.Random(11)
        cookie_db = Database(fresh_url, Settings(_env_file=None))  # type: ignore[call-arg]
        cookies = {o: session_cookie_for(cookie_db, [SECRET], o, f"{o[6:]}@x.io")
                   for o in owners}
        cookie_db.dispose()

        # usage: unique events over the last days, sent in batches with resent duplicates
        unique = [{"id": f"ev-{i:05d}", "account_id": rng.choice(owners),
                   "timestamp": (datetime.now(UTC) - timedelta(
                       minutes=rng.randrange(60 * 24 * 3))).isoformat(),
                   "compute_units": str(Decimal(rng.randrange(1, 5000)) / 100)}
                  for i in range(3000)]
        batches: list[list[dict[str, str]]] = []
        for i in range(0, len(unique), 100):
            batch = unique[i:i + 100] + rng.sample(unique[:i + 100], 20)  # 20 duplicates
            rng.shuffle(batch)
            batches.append(batch)
        expected_units: dict[tuple[str, date], Decimal] = {}
        for e in unique:
            key = (e["account_id"], datetime.fromisoformat(e["timestamp"]).date())
            expected_units[key] = expected_units.get(key, Decimal(0)) + Decimal(e["compute_units"])

        # purchases: one paid Checkout Session per payment intent, each delivered 2-3 times
        purchases = [(rng.choice(owners), f"pi_soak_{i:03d}", rng.randrange(1000, 5000))
                     for i in range(40)]
        deliveries: list[dict[str, Any]] = []
        for account, pi, amount in purchases:
            event = stripe_event("checkout.session.completed", paid_session(account, pi, amount))
            deliveries += [event] * rng.choice((2, 3))
        rng.shuffle(deliveries)

        def post_usage() -> None:
            for batch in batches:
                r = _send(fleet, "POST", "/v1/usage/events",
                          content=json.dumps({"events": batch}).encode(),
                          headers={"Authorization": f"Bearer {ingest_token}",
                                   "Content-Type": "application/json"})
                if r.status_code != 200:
                    errors.append(f"usage batch: {r.status_code} {r.text[:200]}")
                time.sleep(CHAOS_SECONDS / len(batches) / 2)

        def deliver_webhooks() -> None:
            for event in deliveries:
                body, header = sign(event)
                r = _send(fleet, "POST", "/v1/stripe/webhook", content=body,
                          headers={"Stripe-Signature": header,
                                   "Content-Type": "application/json"})
                if r.status_code != 200:
                    errors.append(f"webhook: {r.status_code} {r.text[:200]}")
                time.sleep(CHAOS_SECONDS / len(deliveries) / 2)

        def read_balances() -> None:
            while not stop.is_set():
                owner = rng.choice(owners)
                r = _send(fleet, "GET", "/v1/account/balance",
                          cookies={"hopsplane_session": cookies[owner]})
                if r.status_code != 200:
                    errors.append(f"balance: {r.status_code} {r.text[:200]}")
                time.sleep(0.02)

        billing_jobs: list[int] = []

        def run_billing() -> None:
            n = 0
            while not stop.is_set():
                with psycopg.connect(_plain(fresh_url)) as conn:
                    row = conn.execute(
                        "INSERT INTO hopsplane.jobs (task, idempotency_key, lock_key) "
                        "VALUES (%s, %s, 'soak-billing') RETURNING id",
                        (BILLING_TASK, f"soak-billing-{n}")).fetchone()
                billing_jobs.append(int(row[0]))  # type: ignore[index]
                n += 1
                stop.wait(2.0)

        def chaos() -> None:
            while not stop.wait(2.5):
                fleet.kill_one(rng)

        writers = list(_in_threads(post_usage, deliver_webhooks))
        background = list(_in_threads(read_balances, run_billing, chaos))
        for t in writers:
            t.join(timeout=120)
        time.sleep(max(0.0, CHAOS_SECONDS - (time.monotonic() - started)))
        stop.set()
        for t in background:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in writers + background)
        assert len(fleet.kills) >= 5, fleet.kills
        assert not errors, errors[:5]

        # settle: every process up, every job finished, then one last billing run
        _wait_ready(ports)
        with psycopg.connect(_plain(fresh_url)) as conn:
            conn.execute("INSERT INTO hopsplane.jobs (task, idempotency_key, lock_key) "
                         "VALUES (%s, 'soak-billing-final', 'soak-billing')",
                         (BILLING_TASK,))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = _query(fresh_url, "SELECT count(*) FROM hopsplane.jobs "
                                        "WHERE status IN ('queued', 'running') AND run_at <= now()")
            if pending[0][0] == 0:
                break
            time.sleep(0.3)
        # every job that was due ran to completion; a job queued for later (the final
        # collection of today, due after midnight) has never been run, and never failed
        jobs = dict(_query(fresh_url, "SELECT status, count(*) FROM hopsplane.jobs "
                                      "WHERE run_at <= now() OR attempts > 0 GROUP BY 1"))
        assert set(jobs) == {"done"}, (jobs, _query(
            fresh_url, "SELECT task, status, attempts, run_at - now(), last_error "
                       "FROM hopsplane.jobs WHERE status <> 'done'"))
        later = _query(fresh_url, "SELECT task, status FROM hopsplane.jobs "
                                  "WHERE run_at > now() AND attempts = 0")
        assert all(status == "queued" for _task, status in later), later
        final = _query(fresh_url, "SELECT status FROM hopsplane.jobs "
                                  "WHERE idempotency_key = 'soak-billing-final'")
        assert final == [("done",)]

        # usage: every unique event counted exactly once
        stored = _query(fresh_url, "SELECT count(*), count(DISTINCT event_id) "
                                   "FROM hopsplane.usage_events")
        assert stored == [(len(unique), len(unique))]
        got = {(a, d): Decimal(u) for a, d, u in _query(
            fresh_url, "SELECT account_owner_id, date, compute_units FROM usage_tracking")}
        assert got == expected_units

        # billing: every usage row charged exactly its cost, once
        uncharged = _query(fresh_url, "SELECT count(*) FROM usage_tracking "
                                      "WHERE billed_amount <> total_cost")
        assert uncharged == [(0,)]
        mismatched = _query(fresh_url, """
            SELECT u.account_owner_id FROM (
              SELECT account_owner_id, sum(total_cost) AS cost FROM usage_tracking GROUP BY 1) u
            LEFT JOIN (
              SELECT account_owner_id, -sum(amount) AS charged FROM credits_ledger
              WHERE type = 'usage' GROUP BY 1) l USING (account_owner_id)
            WHERE u.cost IS DISTINCT FROM coalesce(l.charged, 0)""")
        assert mismatched == []

        # purchases: each payment intent credited exactly once, for its amount
        credited = _query(fresh_url, "SELECT stripe_payment_intent_id, account_owner_id, amount "
                                     "FROM credits_ledger WHERE type = 'purchase'")
        assert sorted((pi, a, Decimal(m)) for pi, a, m in credited) == sorted(
            (pi, a, Decimal(amount) / 100) for a, pi, amount in purchases)

        # the ledger's chains hold (the operator's check, as the operator runs it)
        verify = subprocess.run([sys.executable, "-m", "hopsplane", "credits", "verify"],
                                env=fleet.env(), cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # nobody sits in an open transaction, and the survivors answer normally
        # (the workers keep ticking: a transaction of theirs between two statements is
        # "idle in transaction" for a moment; one that stays so for a second is the bug)
        for _ in range(10):
            idle = _query(fresh_url, """
                SELECT pid, application_name, now() - state_change, left(query, 120)
                FROM pg_stat_activity WHERE datname = current_database()
                  AND state LIKE 'idle in transaction%%'
                  AND state_change < now() - interval '1 second'""")
            assert idle == [], idle
            time.sleep(0.3)
        for port in ports:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            r = httpx.get(f"http://127.0.0.1:{port}/v1/account/balance", timeout=5,
                          cookies={"hopsplane_session": cookies[owners[0]]})
            assert r.status_code == 200, r.text
        assert all(w.poll() is None for w in fleet.workers)
        took = time.monotonic() - started
        print(f"soak: {took:.0f} s, kills {fleet.kills}, jobs {jobs}, "
              f"{len(unique)} events in {len(batches)} batches, {len(deliveries)} webhook "
              f"deliveries of {len(purchases)} purchases")
    finally:
        fleet.stop_all()
