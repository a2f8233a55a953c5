"""How fast Stripe purchase events are credited, against the ledger posting itself.

Usage: .venv/bin/python benchmarks/stripe_webhooks.py [--purchases N] [--threads T]

Creates a scratch database on HOPSPLANE_BENCH_DATABASE_URL (default: the system
PostgreSQL, postgresql://root@127.0.0.1:5432/postgres), migrates it, and measures, each
with T threads, one transaction per item, on fresh accounts:

  baseline   credits.service.post of N purchases (the ledger primitive alone)
  service    N signed checkout.session.completed events: signature check, store the
             event, credit (payments.webhooks.handle_event)
  3x         the same N purchases delivered three times each, shuffled (2N duplicates)
  http       N events through POST /v1/stripe/webhook (FastAPI TestClient)
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from queue import Empty, Queue
from typing import Any

import psycopg
import stripe
from fastapi.testclient import TestClient
from psycopg import sql

from hopsplane.api.app import create_app
from hopsplane.config import Settings, normalise_database_url
from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.integrations.stripe import build_stripe
from hopsplane.payments import webhooks

SECRET = "whsec_bench_" + "x" * 20
ACCOUNTS = 40


def event_for(account: str, n: int, tag: str) -> tuple[bytes, str]:
    import json

    obj = {"id": f"cs_test_{tag}{n}", "object": "checkout.session", "mode": "payment",
           "payment_status": "paid", "status": "complete", "payment_intent": f"pi_{tag}{n}",
           "client_reference_id": account, "metadata": {"hopsplane_account": account},
           "amount_total": 1000 + n, "currency": "usd", "livemode": False}
    body = json.dumps({"id": f"evt_{tag}{n}", "object": "event", "type":
                       "checkout.session.completed", "livemode": False,
                       "created": int(time.time()), "data": {"object": obj}})
    return body.encode(), stripe.WebhookSignature.generate_signature_header(body, SECRET)


def run(items: list[Any], threads: int, work: Callable[[Any], None]) -> float:
    queue: Queue[Any] = Queue()
    for item in items:
        queue.put(item)

    def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except Empty:
                return
            work(item)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def owners(db: Database) -> list[str]:
    ids = [f"bench|{uuid.uuid4().hex[:10]}" for _ in range(ACCOUNTS)]
    with db.transaction() as s:
        s.add_all(User(id=i, email=f"{i[6:]}@example.com") for i in ids)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--purchases", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.purchases, args.threads = 20, 2
    n, threads = args.purchases, args.threads

    admin = os.environ.get("HOPSPLANE_BENCH_DATABASE_URL",
                           "postgresql://root@127.0.0.1:5432/postgres")
    name = f"hsp_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = normalise_database_url(replace_database(admin, name))
    try:
        migrate.upgrade(url)
        settings = Settings(environment="development", stripe_secret_key="sk_test_bench",
                            stripe_webhook_secret=SECRET, log_level="WARNING",
                            _env_file=None)  # type: ignore[call-arg]
        gateway = build_stripe(settings)
        assert gateway is not None
        db = Database(url, settings)
        results: dict[str, float] = {}

        accts = owners(db)

        def post(i: int) -> None:
            with db.transaction() as s:
                credits.post(s, Posting(accts[i % ACCOUNTS], EntryType.PURCHASE,
                                        Decimal(1000 + i) / 100, f"bench:base:{i}"))

        results["baseline"] = run(list(range(n)), threads, post)

        def handle(delivery: tuple[bytes, str]) -> None:
            with db.transaction() as s:
                webhooks.handle_event(s, gateway, gateway.verify_event(*delivery))

        accts = owners(db)
        once = [event_for(accts[i % ACCOUNTS], i, "a") for i in range(n)]
        results["service"] = run(once, threads, handle)

        accts = owners(db)
        thrice = [event_for(accts[i % ACCOUNTS], i, "b") for i in range(n)] * 3
        random.Random(1).shuffle(thrice)
        results["3x"] = run(thrice, threads, handle)

        accts = owners(db)
        http = [event_for(accts[i % ACCOUNTS], i, "c") for i in range(n)]
        with TestClient(create_app(settings, database=db)) as client:
            def send(d: tuple[bytes, str]) -> None:
                r = client.post("/v1/stripe/webhook", content=d[0],
                                headers={"Stripe-Signature": d[1]})
                assert r.status_code == 200, r.text
            results["http"] = run(http, threads, send)

        with db.transaction() as s:
            assert credits.verify(s).ok
            purchases = s.execute(sql_text("SELECT count(*) FROM credits_ledger")).scalar_one()
        assert purchases == 4 * n, purchases  # 3x credited each purchase once
        db.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    base = results["baseline"]
    print(f"{n} purchases, {threads} threads, {ACCOUNTS} accounts, one transaction per item; "
          f"server {admin}")
    print(f"{'workload':<10} {'items':>6} {'seconds':>8} {'items/s':>8} {'ms/item':>8} "
          f"{'vs baseline (per purchase)':>27}")
    for label, seconds in results.items():
        items = 3 * n if label == "3x" else n
        print(f"{label:<10} {items:>6} {seconds:>8.2f} {items / seconds:>8.0f} "
              f"{seconds / items * 1000:>8.2f} {seconds / base:>26.2f}x")


def sql_text(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)


if __name__ == "__main__":
    main()
