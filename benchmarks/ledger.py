"""Ledger and billing throughput on a real PostgreSQL server.

    .venv/bin/python benchmarks/ledger.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--seconds 5] [--clients 1,8,32,64] [--billing-accounts 100000] [--skip-billing]

Creates a scratch database on the server (dropped at the end), migrates it, and measures:

1. postings/s through the service layer (`credits.service.post`, one transaction per
   posting, as the API and the Stripe webhook do it) from N client processes, spread over
   1,000 accounts and all on one hot account;
2. in the same run, the bare PostgreSQL ceiling: the same N processes each doing a plain
   single-row INSERT per transaction (psycopg, no ORM) into an unconstrained table;
   and, as a reference, the posting's own SQL from bare psycopg (no service around it),
   which shows how much of the gap the ledger's constraints take on the server;
3. the billing run (`hopsplane billing run`) over one day of usage of 100,000 accounts.

Clients are processes (not threads), so the Python side is not serialised by the GIL.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hopsplane.config import Settings, normalise_database_url
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database

SPREAD_ACCOUNTS = 1000
HOT = "bench|hot"


def _settings() -> Settings:
    return Settings(environment="development", db_pool_size=1, db_max_overflow=0)


def _psycopg_client(
    url: str, seconds: float, barrier: object, statement: str,
    params: Callable[[int], tuple[object, ...]],
) -> int:
    """One statement and a commit per transaction, on a bare psycopg connection."""
    with psycopg.connect(url) as conn:
        barrier.wait()  # type: ignore[attr-defined]
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            conn.execute(statement, params(n))
            conn.commit()
            n += 1
        return n


def _bare_client(url: str, seconds: float, barrier: object, client: int) -> int:
    return _psycopg_client(url, seconds, barrier,
                           "INSERT INTO bench_bare (account, amount) VALUES (%s, %s)",
                           lambda n: (f"c{client}", Decimal("1.00")))


def _sql_client(url: str, seconds: float, barrier: object, client: int) -> int:
    """The posting's own SQL without the service: the same function call as
    credits.service.post makes, one transaction each. What the schema's guarantees cost
    on the server, with the least Python around it."""
    rng = random.Random(client)
    prefix = uuid.uuid4().hex[:8]
    return _psycopg_client(
        url, seconds, barrier,
        "SELECT * FROM hopsplane.post_next_entry(%s, %s, 'grant', NULL, NULL, %s, NULL)",
        lambda n: (f"bench|{rng.randrange(SPREAD_ACCOUNTS):04d}", Decimal("1.00"),
                   f"s:{prefix}:{n}"),
    )


def _service_client(url: str, seconds: float, barrier: object, client: int, hot: bool,
                    usage: bool = False) -> int:
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting
    from hopsplane.db.engine import Database

    db = Database(url, _settings())
    rng = random.Random(client)
    with db.transaction() as s:  # warm the connection
        service.balance(s, HOT)
    barrier.wait()  # type: ignore[attr-defined]
    end = time.perf_counter() + seconds
    n = 0
    prefix = uuid.uuid4().hex[:8]
    while time.perf_counter() < end:
        account = HOT if hot else f"bench|{rng.randrange(SPREAD_ACCOUNTS):04d}"
        with db.transaction() as s:
            if usage:  # a debit: since revision 0017 it also records its draws
                service.post(
                    s, Posting(account, EntryType.USAGE, Decimal("-0.01"), f"b:{prefix}:{n}")
                )
            else:
                service.post(
                    s, Posting(account, EntryType.GRANT, Decimal("1.00"), f"b:{prefix}:{n}")
                )
        n += 1
    db.dispose()
    return n


def _client(kind: str, url: str, seconds: float, barrier: object, client: int,
            results: object) -> None:
    if kind == "bare":
        n = _bare_client(url, seconds, barrier, client)
    elif kind == "sql":
        n = _sql_client(url, seconds, barrier, client)
    else:
        n = _service_client(url, seconds, barrier, client, kind in ("hot", "usage hot"),
                            usage=kind.startswith("usage"))
    results.put(n)  # type: ignore[attr-defined]


def _measure(kind: str, url: str, clients: int, seconds: float) -> float:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(kind, url, seconds, barrier, i, results))
             for i in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    started = time.perf_counter()
    total = sum(results.get(timeout=seconds + 120) for _ in procs)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    return total / max(elapsed, seconds)


def _setup_postings(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_bare (id bigserial PRIMARY KEY, account text, "
                     "amount numeric(14,2), created_at timestamptz DEFAULT now())")
        conn.execute(
            "INSERT INTO users (id, email) SELECT 'bench|' || lpad(i::text, 4, '0'), "
            "'b' || i || '@example.com' FROM generate_series(0, %s) AS i",
            (SPREAD_ACCOUNTS - 1,),
        )
        conn.execute("INSERT INTO users (id, email) VALUES (%s, 'hot@example.com')", (HOT,))
    # accounts start funded (as most are), through the set-based path
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting
    from hopsplane.db.engine import Database

    db = Database(url, _settings())
    with db.transaction() as s:
        accounts = [f"bench|{i:04d}" for i in range(SPREAD_ACCOUNTS)] + [HOT]
        service.post_many(s, [Posting(a, EntryType.GRANT, Decimal("1000000.00"), f"fund:{a}")
                              for a in accounts])
    db.dispose()


def bench_postings(url: str, clients: list[int], seconds: float) -> None:
    _setup_postings(url)
    print(f"\npostings/s, {seconds:.0f} s per cell, client processes; "
          f"spread = {SPREAD_ACCOUNTS} funded accounts, hot = one account; "
          f"service = credits.service.post (grant of $1, one transaction each); usage = "
          f"the same with a usage debit of $0.01 (the draw path of revision 0017)")
    print("posting SQL alone = the same server-side posting (hopsplane.post_next_entry) from "
          "bare psycopg, spread: the floor the schema's constraints set, without the service")
    print(f"{'clients':>7} | {'bare INSERT ceiling':>19} | {'service spread':>14} | "
          f"{'% of ceiling':>12} | {'service hot':>11} | {'posting SQL alone':>17} | "
          f"{'% of ceiling':>12} | {'usage spread':>12} | {'usage hot':>9}")
    print("-" * 138)
    for n in clients:
        # interleaved and best of two: the machine is shared, so a cell measured alone
        # can land in someone else's burst; every column gets the same treatment
        cells: dict[str, float] = {"bare": 0.0, "spread": 0.0, "hot": 0.0, "sql": 0.0,
                                   "usage spread": 0.0, "usage hot": 0.0}
        for _ in range(2):
            for kind in cells:
                cells[kind] = max(cells[kind], _measure(kind, url, n, seconds))
        bare, spread, hot, alone = cells["bare"], cells["spread"], cells["hot"], cells["sql"]
        print(f"{n:>7} | {bare:>19.0f} | {spread:>14.0f} | {100 * spread / bare:>11.0f}% | "
              f"{hot:>11.0f} | {alone:>17.0f} | {100 * alone / bare:>11.0f}% | "
              f"{cells['usage spread']:>12.0f} | {cells['usage hot']:>9.0f}", flush=True)
    _verify(url)


def bench_billing(url: str, accounts: int, start_balance: Decimal) -> None:
    from hopsplane.billing.run import run_billing
    from hopsplane.db.engine import Database
    from hopsplane.hooks import LoggingHooks
    from hopsplane.integrations.email import LogMailer

    day = date(2026, 11, 24)
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute(
            "INSERT INTO users (id, email) SELECT 'bill|' || lpad(i::text, 6, '0'), "
            "'bill' || i || '@example.com' FROM generate_series(1, %s) AS i",
            (accounts,),
        )
        # one day of usage per account: 1,000 to 200,000 units (0.10 to 20.00 dollars)
        conn.execute(
            """
            INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown)
            SELECT id, %s, u, jsonb_build_object(id, u)
            FROM (SELECT id, (1000 + (hashtext(id) & 65535) * 3)::numeric AS u
                  FROM users WHERE id LIKE 'bill|%%') AS s
            """,
            (day,),
        )
        conn.execute("ANALYZE")
        setup = time.perf_counter() - t
    db = Database(url, Settings(environment="development"))
    # every account starts with the same credit, posted set-based through post_many
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting

    t = time.perf_counter()
    ids = [f"bill|{i:06d}" for i in range(1, accounts + 1)]
    for start in range(0, accounts, 5000):
        with db.transaction() as s:
            service.post_many(s, [Posting(a, EntryType.PURCHASE, start_balance, f"p:{a}")
                                  for a in ids[start:start + 5000]])
    grants = time.perf_counter() - t
    hooks, mailer = LoggingHooks(), LogMailer()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t = time.perf_counter()
    report = run_billing(db, day, hooks=hooks, mailer=mailer, batch_size=1000, workers=2)
    first = time.perf_counter() - t
    t = time.perf_counter()
    again = run_billing(db, day, hooks=hooks, mailer=mailer, batch_size=1000)
    repeat = time.perf_counter() - t
    db.dispose()
    print(f"\nbilling one day of {accounts:,} accounts (setup of users+usage {setup:.1f} s; "
          f"{accounts:,} purchases via post_many {grants:.1f} s = "
          f"{accounts / grants:,.0f} postings/s; each account starts at ${start_balance}, "
          f"a day costs $0.10 to $19.76)")
    print(f"  first run : {first:6.1f} s  {report.postings:,} debits, {report.amount} "
          f"charged, {report.notices_sent:,} notices, {report.suspended:,} suspensions, "
          f"{len(report.failures)} failures  (target < 30 s)")
    print(f"  repeat run: {repeat:6.1f} s  {again.postings} debits")
    _verify(url)


def _verify(url: str) -> None:
    from hopsplane.credits import service
    from hopsplane.db.engine import Database

    db = Database(url, Settings(environment="development", db_statement_timeout_ms=0))
    t = time.perf_counter()
    with db.transaction() as s:
        report = service.verify(s)
    db.dispose()
    print(f"  verify: {'ok' if report.ok else 'BROKEN'}, {report.entries:,} entries in "
          f"{report.accounts:,} accounts ({time.perf_counter() - t:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="an admin URL of the server; a scratch database is created")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--billing-accounts", type=int, default=100_000)
    parser.add_argument("--billing-start-balance", default="15.00",
                        help="credit of every account before billing (15: most cross a "
                        "threshold and a quarter are suspended; 100: none)")
    parser.add_argument("--skip-postings", action="store_true")
    parser.add_argument("--skip-billing", action="store_true")
    args = parser.parse_args()

    name = f"hsp_bench_{uuid.uuid4().hex[:8]}"
    admin = args.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    url = replace_database(admin, name)
    try:
        migrate.upgrade(normalise_database_url(url))
        print(f"PostgreSQL {version[0] if version else '?'} at {admin} (database {name}, "
              f"synchronous_commit={sync[0] if sync else '?'}), {mp.cpu_count()} CPUs, "
              f"load average at start {os.getloadavg()[0]:.1f}")
        if not args.skip_postings:
            bench_postings(url, [int(c) for c in args.clients.split(",")], args.seconds)
        if not args.skip_billing:
            bench_billing(url, args.billing_accounts, Decimal(args.billing_start_balance))
        print(f"load average at end {os.getloadavg()[0]:.1f}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    main()
