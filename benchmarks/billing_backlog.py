"""One account with a long unbilled backlog in a billing run, on a real PostgreSQL server.

    .venv/bin/python benchmarks/billing_backlog.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--days 10000] [--others 1000] [--slice-days 366]

Creates a scratch database (dropped at the end), and twice (a fresh database each time)
one account with ``--days`` unbilled days plus ``--others`` accounts with one day each, then
times ``run_billing`` and its longest transaction:

- baseline: the whole backlog in one transaction (``slice_days`` = ``--days``, which is
  what every run did before slicing: the transaction grows with the backlog, and an
  account with 40,000 days timed out every run at the 30 s statement timeout);
- sliced: ``--slice-days`` days of the account per transaction (the default setting).

The longest transaction is measured from the ledger: the entries one transaction posted
share its ``now()``, so the largest number of usage entries of one account with one
``created_at`` is the biggest transaction of the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import structlog

from hopsplane.config import Settings, normalise_database_url
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database

THROUGH = date(2026, 11, 30)


def _one(admin: str, days: int, others: int, slice_days: int) -> tuple[float, int, int, int]:
    """(seconds, debits, largest transaction of the backlog account, failures)."""
    from hopsplane.billing.run import run_billing
    from hopsplane.db.engine import Database
    from hopsplane.hooks import LoggingHooks

    name = f"hsp_backlog_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = replace_database(admin, name)
    try:
        migrate.upgrade(normalise_database_url(url))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (id, email) VALUES ('backlog|big', 'big@x.io')")
            conn.execute(
                "INSERT INTO users (id, email) SELECT 'backlog|' || lpad(i::text, 6, '0'), "
                "'b' || i || '@x.io' FROM generate_series(1, %s) AS i", (others,))
            conn.execute(
                "INSERT INTO usage_tracking (account_owner_id, date, compute_units, "
                "user_breakdown) SELECT 'backlog|big', d::date, 10000, "
                "jsonb_build_object('backlog|big', 10000) FROM generate_series("
                "%s::date, %s::date, interval '1 day') d",
                (THROUGH - timedelta(days=days - 1), THROUGH))
            conn.execute(
                "INSERT INTO usage_tracking (account_owner_id, date, compute_units, "
                "user_breakdown) SELECT id, %s, 10000, jsonb_build_object(id, 10000) "
                "FROM users WHERE id <> 'backlog|big'", (THROUGH,))
            conn.execute("ANALYZE")
        db = Database(url, Settings(environment="development", db_statement_timeout_ms=0))
        t = time.perf_counter()
        report = run_billing(db, THROUGH, hooks=LoggingHooks(),
                             batch_size=1000, workers=2, slice_days=slice_days)
        seconds = time.perf_counter() - t
        db.dispose()
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM credits_ledger WHERE "
                "account_owner_id = 'backlog|big' AND type = 'usage' GROUP BY created_at) t"
            ).fetchone()
        return seconds, report.postings, int(row[0] if row and row[0] else 0), len(
            report.failures)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--days", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=1000)
    parser.add_argument("--slice-days", type=int, default=366)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, tiny data: only shows the script runs "
                        "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.days, args.others, args.slice_days = 40, 5, 7
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    admin = args.url.replace("postgresql+psycopg://", "postgresql://")
    print(f"one account with {args.days:,} unbilled days and {args.others:,} accounts with "
          "one day each, billed by one run")
    for label, slice_days in (("baseline (one transaction for the backlog)", args.days),
                              (f"sliced ({args.slice_days} days per transaction)",
                               args.slice_days)):
        seconds, debits, largest, failures = _one(admin, args.days, args.others, slice_days)
        print(f"  {label:45} {seconds:6.1f} s  {debits:,} debits  largest transaction "
              f"{largest:,} debits of the account  {failures} failures")


if __name__ == "__main__":
    main()
