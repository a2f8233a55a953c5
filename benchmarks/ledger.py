"""Ledger and billing throughput on a real PostgreSQL server.

    .venv/bin/python benchmarks/ledger.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--seconds 5] [--clients 1,8,32,64] [--billing-accounts 100000] [--skip-billing]
        [--repeat 3] [--stats analyzed|never|stale] [--year-accounts 200] [--smoke]

Creates a scratch database on the server (dropped at the end), migrates it, and measures:

1. postings/s through the service layer (`credits.service.post`, one transaction per
   posting, as the API and the Stripe webhook do it) from N client processes, spread over
   1,000 accounts and all on one hot account;
2. in the same run, the bare PostgreSQL ceiling: the same N processes each doing a plain
   single-row INSERT per transaction (psycopg, no ORM) into an unconstrained table;
   and, as a reference, the posting's own SQL from bare psycopg (no service around it),
   which shows how much of the gap the ledger's constraints take on the server;
3. the billing run (`hopsplane billing run`) over one day of usage of 100,000 accounts,
   after 100,000 purchases through the batch path (`post_many`);
4. the size of the lots, draws and checkpoints against the ledger's after a year of daily
   usage with monthly grants (revision 0023 draws lazily: see docs/schema.md).

The posting columns are the one-round-trip path (`credits.service.post_now`: one pipelined
round trip that posts, updates the standing and commits) and, for reference, the
transactional `credits.service.post` inside a SQLAlchemy session. Cells are interleaved
(every kind once, then again) and the median of ``--repeat`` runs is printed: the machine
is shared. ``--stats never`` keeps autovacuum off and never runs ANALYZE, ``--stats
stale`` analyzes before the data is loaded (statistics that say "almost empty"); the
default analyzes after each load. ``--smoke`` runs everything in seconds on tiny data
(tests/benchmarks/test_smoke.py runs it, so a broken benchmark fails the slow tier).

Clients are processes (not threads), so the Python side is not serialised by the GIL.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _now_client(url: str, seconds: float, barrier: object, client: int, hot: bool) -> int:
    """Usage debits through credits.service.post_now: one pipelined round trip each, on
    the client's own connection (as a worker holds one)."""
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting

    rng = random.Random(client)
    prefix = uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        barrier.wait()  # type: ignore[attr-defined]
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            account = HOT if hot else f"bench|{rng.randrange(SPREAD_ACCOUNTS):04d}"
            service.post_now(
                conn, Posting(account, EntryType.USAGE, Decimal("-0.01"), f"n:{prefix}:{n}"))
            n += 1
        return n


def _client(kind: str, url: str, seconds: float, barrier: object, client: int,
            results: object) -> None:
    if kind == "bare":
        n = _bare_client(url, seconds, barrier, client)
    elif kind == "sql":
        n = _sql_client(url, seconds, barrier, client)
    elif kind.startswith("now"):
        n = _now_client(url, seconds, barrier, client, kind == "now hot")
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
    _analyze(url, "loaded")


def bench_postings(url: str, clients: list[int], seconds: float, repeat: int) -> None:
    _setup_postings(url)
    print(f"\npostings/s, {seconds:g} s per cell, client processes, median of {repeat} "
          f"interleaved runs; spread = {SPREAD_ACCOUNTS} funded accounts, hot = one "
          f"account; usage = a debit of $0.01")
    print("now = credits.service.post_now (one pipelined round trip: post, standing, "
          "commit; usage commits without waiting for the flush); service = "
          "credits.service.post in a SQLAlchemy transaction (grant of $1 / usage); SQL "
          "alone = hopsplane.post_next_entry from bare psycopg (a grant, spread)")
    print(f"{'clients':>7} | {'bare INSERT':>11} | {'now usage':>9} | {'% bare':>6} | "
          f"{'now usage hot':>13} | {'service usage':>13} | {'% bare':>6} | "
          f"{'service hot':>11} | {'service grant':>13} | {'SQL alone':>9}")
    print("-" * 124)
    kinds = ("bare", "now spread", "now hot", "usage spread", "hot", "spread", "sql")
    for n in clients:
        # interleaved: the machine is shared, so a cell measured alone can land in
        # someone else's burst; every column gets the same treatment, and the median
        runs: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(repeat):
            for kind in kinds:
                runs[kind].append(_measure(kind, url, n, seconds))
        cell = {k: statistics.median(v) for k, v in runs.items()}
        bare = cell["bare"]
        print(f"{n:>7} | {bare:>11.0f} | {cell['now spread']:>9.0f} | "
              f"{100 * cell['now spread'] / bare:>5.0f}% | {cell['now hot']:>13.0f} | "
              f"{cell['usage spread']:>13.0f} | {100 * cell['usage spread'] / bare:>5.0f}% | "
              f"{cell['hot']:>11.0f} | {cell['spread']:>13.0f} | {cell['sql']:>9.0f}",
              flush=True)
    print("  targets: now usage >= 60% of bare at 1 client and >= 40% at 8; "
          "now usage hot >= 1,500/s at 8 clients")
    _verify(url)


def bench_billing(url: str, accounts: int, start_balance: Decimal) -> None:
    from hopsplane.billing.run import run_billing
    from hopsplane.db.engine import Database
    from hopsplane.hooks import LoggingHooks

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
        setup = time.perf_counter() - t
    _analyze(url, "loaded")
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
    _analyze(url, "loaded")
    hooks = LoggingHooks()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    t = time.perf_counter()
    report = run_billing(db, day, hooks=hooks, batch_size=1000, workers=2)
    first = time.perf_counter() - t
    t = time.perf_counter()
    again = run_billing(db, day, hooks=hooks, batch_size=1000)
    repeat = time.perf_counter() - t
    db.dispose()
    print(f"\nbilling one day of {accounts:,} accounts (setup of users+usage {setup:.1f} s; "
          f"{accounts:,} purchases via post_many {grants:.1f} s = "
          f"{accounts / grants:,.0f} postings/s (target >= 10,000/s); each account starts "
          f"at ${start_balance}, a day costs $0.10 to $19.76)")
    print(f"  first run : {first:6.1f} s  {report.postings:,} debits, {report.amount} "
          f"charged, {report.notices:,} notices queued, {report.suspended:,} suspensions, "
          f"{len(report.failures)} failures  (target <= 8 s at 100,000 accounts)")
    print(f"  repeat run: {repeat:6.1f} s  {again.postings} debits")
    _verify(url)


def _verify(url: str) -> None:
    from hopsplane.credits import service
    from hopsplane.db.engine import Database

    db = Database(url, Settings(environment="development", db_statement_timeout_ms=0))
    t = time.perf_counter()
    with db.transaction() as s:  # every account drawn up to its head, as the CLI does
        behind = service.accounts_behind(s)
    for start in range(0, len(behind), 500):
        with db.transaction() as s:
            service.catch_up(s, behind[start:start + 500])
    with db.transaction() as s:
        report = service.verify(s)
    db.dispose()
    print(f"  verify: {'ok' if report.ok else 'BROKEN'}, {report.entries:,} entries in "
          f"{report.accounts:,} accounts ({time.perf_counter() - t:.1f} s, of which "
          f"drawing {len(behind):,} accounts up to their heads)")
    if not report.ok:
        raise SystemExit(f"verify found {len(report.breaks)} breaks: {report.breaks[:5]}")


def bench_year(url: str, accounts: int) -> None:
    """A year of daily usage with a monthly grant on ``accounts`` accounts, posted
    set-based day by day (as billing does), everything drawn, then the sizes."""
    from hopsplane.credits import service
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting
    from hopsplane.db.engine import Database

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email) SELECT 'year|' || lpad(i::text, 6, '0'), "
            "'year' || i || '@example.com' FROM generate_series(1, %s) AS i", (accounts,))
    ids = [f"year|{i:06d}" for i in range(1, accounts + 1)]
    db = Database(url, _settings())
    t = time.perf_counter()
    for day in range(365):
        postings = []
        for i, a in enumerate(ids):
            if day % 30 == 0:
                postings.append(Posting(a, EntryType.GRANT, Decimal("50.00"), f"y:{a}:g{day}",
                                        description=f"monthly credit, day {day}"))
            postings.append(Posting(a, EntryType.USAGE, -Decimal(50 + (i + day) % 150) / 100,
                                    f"y:{a}:u{day}", description=f"usage of day {day}"))
        with db.transaction() as s:
            service.post_many(s, postings)
    posted = time.perf_counter() - t
    _analyze(url, "loaded")
    t = time.perf_counter()
    _verify(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        sizes = {name: conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0]
                 for name in ("credits_ledger", "hopsplane.credit_lots",
                              "hopsplane.credit_draws", "hopsplane.credit_checkpoints")}
        entries = conn.execute("SELECT count(*) FROM credits_ledger").fetchone()[0]
        draws = conn.execute("SELECT count(*) FROM hopsplane.credit_draws").fetchone()[0]
    ledger = sizes["credits_ledger"]
    derived = sum(v for k, v in sizes.items() if k != "credits_ledger")
    print(f"\na year of daily usage + monthly grants on {accounts:,} accounts: "
          f"{entries:,} entries posted in {posted:.1f} s, drawn and verified in "
          f"{time.perf_counter() - t:.1f} s, {draws:,} draws")
    print("  sizes with indexes: " + ", ".join(
        f"{k.split('.')[-1]} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    print(f"  lots + draws + checkpoints = {100 * derived / ledger:.0f}% of the ledger "
          f"(target <= 25%)")
    db.dispose()


STATS = "analyzed"


def _analyze(url: str, phase: str) -> None:
    """ANALYZE after loading (the default), never (--stats never), or only before the
    data (--stats stale: right after migrating and creating the accounts)."""
    if (STATS == "analyzed" and phase == "loaded") or (STATS == "stale" and phase == "early"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")


def _no_autovacuum(url: str) -> None:
    """Keep the statistics as the mode says: autovacuum would analyze behind our back."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname IN ('public', 'hopsplane')").fetchall()
        for (table,) in tables:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


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
    parser.add_argument("--skip-year", action="store_true")
    parser.add_argument("--year-accounts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved runs per cell; the median is printed")
    parser.add_argument("--stats", choices=("analyzed", "never", "stale"), default="analyzed")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, tiny data: checks that the benchmark runs")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.clients, args.repeat = 0.3, "1,2", 1
        args.billing_accounts, args.year_accounts = 300, 3
    global STATS
    STATS = args.stats

    admin = args.url.replace("postgresql+psycopg://", "postgresql://")
    with _scratch(admin, args.stats) as url:
        with psycopg.connect(admin, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        print(f"PostgreSQL {version[0] if version else '?'} at {admin} "
              f"(synchronous_commit={sync[0] if sync else '?'}), {mp.cpu_count()} CPUs, "
              f"load average at start {os.getloadavg()[0]:.1f}; statistics: {args.stats}")
        if not args.skip_postings:
            bench_postings(url, [int(c) for c in args.clients.split(",")], args.seconds,
                           args.repeat)
        if not args.skip_billing:
            bench_billing(url, args.billing_accounts, Decimal(args.billing_start_balance))
    if not args.skip_year:
        with _scratch(admin, args.stats) as url:  # its own database: sizes of its own
            bench_year(url, args.year_accounts)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


@contextmanager
def _scratch(admin: str, stats: str) -> Iterator[str]:
    """A migrated scratch database, dropped afterwards."""
    name = f"hsp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = replace_database(admin, name)
    try:
        migrate.upgrade(normalise_database_url(url))
        if stats != "analyzed":
            _no_autovacuum(url)
        _analyze(url, "early")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

if __name__ == "__main__":
    main()
