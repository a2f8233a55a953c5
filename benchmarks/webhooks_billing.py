"""Does webhook delivery slow the billing run that causes the events? A billing run over N
accounts that each have one enabled webhook endpoint subscribed to what billing causes,
against the same run with no endpoints, measured in the same run.

    .venv/bin/python benchmarks/webhooks_billing.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--accounts 100000] [--rounds 2]

How it is computed. A template database is migrated once; each round makes two scratch
databases from it and loads both the same way: ``--accounts`` accounts, each with a
purchase of $11.00 (through ``post_many``, in batches of 5,000) and one day of usage
costing $3.00 to $22.50, so billing crosses the $10 low-balance threshold of every
account and suspends those charged more than their balance. One of the two also gets one
enabled endpoint per account subscribed to ``low_balance``, ``suspended``, ``recovered``
and ``budget_reached``. Both are ANALYZEd (and a CHECKPOINT taken) after loading, then
``run_billing`` (batches of 1,000, 2 threads, as the job runs it) is timed on each, the
order alternating from round to round so that neither always runs first. Billing only
enqueues: each event's delivery row and ``webhooks.deliver`` job are inserted by
``hopsplane.publish_event`` in the batch's transaction; nothing is sent (the worker would
send them later, outside the run). Printed: each run, the median of each kind, and the
ratio (target <= 1.5x), with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import structlog

from hopsplane.config import Settings, normalise_database_url
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database

DAY = date(2026, 11, 24)
START = Decimal("11.00")
EVENT_TYPES = ["low_balance", "suspended", "recovered", "budget_reached"]


def _create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template))
        conn.execute(statement)
    return replace_database(admin, name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def _load(url: str, accounts: int, endpoints: bool) -> None:
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting
    from hopsplane.db.engine import Database

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email) SELECT 'wh|' || lpad(i::text, 7, '0'), "
            "'wh' || i || '@example.com' FROM generate_series(1, %s) AS i", (accounts,))
        # $3.00 to $22.50 of usage (30,000 to 225,000 units at $0.0001)
        conn.execute(
            """
            INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown)
            SELECT id, %s, u, jsonb_build_object(id, u)
            FROM (SELECT id, (30000 + (hashtext(id) & 65535) * 3)::numeric AS u
                  FROM users WHERE id LIKE 'wh|%%') AS s
            """, (DAY,))
        if endpoints:
            # the secret is never decrypted here (nothing is sent): any text will do
            conn.execute(
                "INSERT INTO hopsplane.webhook_endpoints (account_owner_id, url, event_types,"
                " secret) SELECT id, 'https://hooks.example.com/' || id, %s, 'not-sent' "
                "FROM users WHERE id LIKE 'wh|%%'", (EVENT_TYPES,))
    db = Database(url, Settings(environment="development", db_statement_timeout_ms=0))
    ids = [f"wh|{i:07d}" for i in range(1, accounts + 1)]
    for start in range(0, accounts, 5000):
        with db.transaction() as s:
            service.post_many(s, [Posting(a, EntryType.PURCHASE, START, f"p:{a}")
                                  for a in ids[start:start + 5000]])
    db.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        # the next run does not pay for the load's writes (without superuser: ANALYZE only)
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def _bill(url: str) -> tuple[float, int, int, int, int]:
    """(seconds, debits, suspensions, deliveries queued, failures) of one billing run."""
    from hopsplane.billing.run import run_billing
    from hopsplane.db.engine import Database
    from hopsplane.hooks import LoggingHooks

    db = Database(url, Settings(environment="development", db_statement_timeout_ms=0))
    t = time.perf_counter()
    report = run_billing(db, DAY, hooks=LoggingHooks(), batch_size=1000, workers=2)
    seconds = time.perf_counter() - t
    db.dispose()
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM hopsplane.webhook_deliveries").fetchone()
    return (seconds, report.postings, report.suspended, int(row[0]) if row else 0,
            len(report.failures))


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, tiny data: only shows the script runs "
                        "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.accounts, args.rounds = 30, 1
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    admin = args.url.replace("postgresql+psycopg://", "postgresql://")
    tag = uuid.uuid4().hex[:8]
    template = f"hsp_whb_tpl_{tag}"
    made: list[str] = [template]
    print(f"billing one day of {args.accounts:,} accounts, with one webhook endpoint each "
          f"and without; {args.rounds} round(s); load average before: {_load_average()}")
    try:
        migrate.upgrade(normalise_database_url(_create(admin, template)))
        times: dict[str, list[float]] = {"without endpoints": [], "with endpoints": []}
        for round_ in range(args.rounds):
            urls = {}
            for label in times:
                name = f"hsp_whb_{tag}_{round_}_{'with' if label.startswith('with ') else 'no'}"
                made.append(name)
                urls[label] = _create(admin, name, template)
                t = time.perf_counter()
                _load(urls[label], args.accounts, endpoints=label == "with endpoints")
                print(f"  round {round_ + 1}: loaded {label} in {time.perf_counter() - t:.1f} s")
            order = list(times) if round_ % 2 == 0 else list(reversed(times))
            for label in order:
                seconds, debits, suspended, deliveries, failures = _bill(urls[label])
                times[label].append(seconds)
                print(f"  round {round_ + 1}: {label:18} {seconds:7.2f} s  {debits:,} debits, "
                      f"{suspended:,} suspensions, {deliveries:,} webhook deliveries queued, "
                      f"{failures} failures")
                if failures:
                    raise SystemExit(f"the billing run failed for {failures} batches")
                if label == "with endpoints" and deliveries < args.accounts:
                    raise SystemExit("fewer deliveries than accounts: the load is wrong")
            for _ in urls:  # this round's two databases: the last two made
                _drop(admin, made.pop())
        without = statistics.median(times["without endpoints"])
        with_ = statistics.median(times["with endpoints"])
        print(f"median without endpoints {without:.2f} s, with endpoints {with_:.2f} s: "
              f"ratio {with_ / without:.2f}x (target <= 1.5x); "
              f"load average after: {_load_average()}")
    finally:
        for name in made:
            _drop(admin, name)


if __name__ == "__main__":
    main()
