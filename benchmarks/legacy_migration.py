"""Benchmark of `hopsplane legacy migrate` on a large generated legacy database.

Creates a scratch database on a PostgreSQL server, generates N users (10 usage_daily rows
each: 1,000,000 users = 10,000,000 usage rows), then in the same run:

- baseline: a bare ``INSERT INTO copy SELECT * FROM usage_daily`` into an unindexed copy
  (``CREATE TABLE ... (LIKE usage_daily)``), committed;
- the whole migrate (lock, plan, backup with COPY + SHA-256, backup check, staging, schema,
  data move, verification, drop, commit), step by step.

Target: migrate within 3x the baseline, peak RSS of this process under 300 MB.

    .venv/bin/python benchmarks/legacy_migration.py --users 1000000 \
        --admin-url postgresql://root@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from sqlalchemy import text

from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.embedded import replace_database
from hopsplane.legacy import service
from hopsplane.legacy.generate import generate


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--backup-dir", type=Path, default=None,
                        help="default: a temporary folder, removed at the end")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.users = 200

    name = f"hsp_bench_legacy_{os.getpid()}"
    url = replace_database(args.admin_url, name)
    backup_dir = args.backup_dir or Path(tempfile.mkdtemp(prefix="hsp-bench-backup-"))
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        t0 = time.perf_counter()
        with service.connect(url) as conn, conn.begin():
            sizes = generate(conn, args.users)
        generated = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute("VACUUM ANALYZE")
            raw.execute("CHECKPOINT")
            usage_rows = raw.execute("SELECT count(*) FROM usage_daily").fetchone()
        print(f"generated {sizes.users:,} users, {usage_rows[0] if usage_rows else 0:,} "
              f"usage_daily rows in {generated:.1f}s")

        # baseline: the bare copy of the usage rows into an unindexed table
        with service.connect(url) as conn:
            with conn.begin():
                conn.execute(text("CREATE TABLE usage_copy (LIKE usage_daily)"))
            t0 = time.perf_counter()
            with conn.begin():
                conn.execute(text("INSERT INTO usage_copy SELECT * FROM usage_daily"))
            baseline = time.perf_counter() - t0
            with conn.begin():
                conn.execute(text("DROP TABLE usage_copy"))
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute("CHECKPOINT")
        print(f"baseline INSERT ... SELECT of usage_daily into an unindexed copy: "
              f"{baseline:.1f}s")

        box = SecretBox(Settings().effective_encryption_keys)
        steps: dict[str, float] = {}
        started: dict[str, float] = {}

        def hook(step: str, phase: Literal["start", "done"]) -> None:
            if phase == "start":
                started[step] = time.perf_counter()
                print(f"  {step} ...", flush=True)
            else:
                steps[step] = time.perf_counter() - started[step]
                print(f"  {step}: {steps[step]:.1f}s", flush=True)

        t0 = time.perf_counter()
        with service.connect(url) as conn:
            with conn.begin():
                report = service.migrate(conn, backup_dir, box, on_step=hook)
                c0 = time.perf_counter()
            steps["commit"] = time.perf_counter() - c0
        total = time.perf_counter() - t0
        assert report.outcome == "migrated"
        backup_mb = sum(f.stat().st_size for f in backup_dir.iterdir()) / 1e6

        print()
        print(f"{'step':<22}{'seconds':>10}")
        for step, secs in steps.items():
            print(f"{step:<22}{secs:>10.1f}")
        print(f"{'migrate, total':<22}{total:>10.1f}")
        print(f"{'baseline':<22}{baseline:>10.1f}")
        ratio = total / baseline if baseline else float("inf")
        print(f"ratio migrate / baseline: {ratio:.2f} (target <= 3.00) "
              f"{'OK' if ratio <= 3 else 'MISSED'}")
        rss = peak_rss_mb()
        print(f"peak RSS of this process: {rss:.0f} MB (target < 300 MB) "
              f"{'OK' if rss < 300 else 'MISSED'}")
        print(f"backup: {backup_mb:,.0f} MB in {backup_dir}")
        print(f"rows after: {report.counts_after}")
    finally:
        if args.backup_dir is None:
            shutil.rmtree(backup_dir, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


if __name__ == "__main__":
    main()
