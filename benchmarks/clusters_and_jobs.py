"""Placement of sign-ups on clusters, and the job queue's throughput.

    .venv/bin/python benchmarks/clusters_and_jobs.py [--url postgresql://root@127.0.0.1:5432/postgres]

Creates a scratch database on that server, migrates it, measures, drops it. Prints:

1. placements/s: N sign-ups from 8 threads through `clusters.service.assign_account`
   (locks the active cluster rows, picks the emptiest, inserts; the trigger counts).
   Baseline, same run: the same number of bare INSERTs into account_clusters from 8 threads
   (no lock, no choice), i.e. what the write alone costs.
2. jobs/s: M no-op jobs drained by 1 and by 2 workers (`worker.service.run_one`, one
   transaction per job: claim with SKIP LOCKED, savepoint, mark done). Baseline, same run:
   M single-row UPDATE transactions on the same table (the least a job can cost).
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from pydantic import SecretStr
from sqlalchemy import text

from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import ClusterCreate
from hopsplane.config import Settings, normalise_database_url
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database
from hopsplane.db.engine import Database
from hopsplane.observability import configure_logging
from hopsplane.worker import service as queue
from hopsplane.worker.schemas import JobContext

THREADS = 8


def _parallel(n_threads: int, work: Callable[[int], None]) -> float:
    barrier = threading.Barrier(n_threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def _users(db: Database, n: int, prefix: str) -> list[str]:
    ids = [f"{prefix}|{i}" for i in range(n)]
    with db.transaction() as s:
        s.execute(
            text(
                "INSERT INTO users (id, email) SELECT u, replace(u, '|', '_') || '@bench.io' "
                "FROM unnest(CAST(:ids AS text[])) AS u"
            ),
            {"ids": ids},
        )
    return ids


def bench_placement(db: Database, box: SecretBox, n: int) -> None:
    with db.transaction() as s:
        cluster_ids = [
            clusters.register_cluster(
                s,
                box,
                ClusterCreate(
                    name=f"c{i}",
                    api_url="https://hw.example.com",
                    api_key=SecretStr("k"),
                    max_users=n,
                ),
            ).id
            for i in range(4)
        ]
    owners = _users(db, n, "placed")
    chunks = [owners[i::THREADS] for i in range(THREADS)]

    def place(i: int) -> None:
        for owner in chunks[i]:
            with db.transaction() as s:
                clusters.assign_account(s, owner)

    placed = _parallel(THREADS, place)

    bare_owners = _users(db, n, "bare")
    bare_chunks = [bare_owners[i::THREADS] for i in range(THREADS)]

    def bare(i: int) -> None:
        for j, owner in enumerate(bare_chunks[i]):
            with db.transaction() as s:
                s.execute(
                    text(
                        "INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
                        "VALUES (:o, :c)"
                    ),
                    {"o": owner, "c": cluster_ids[j % 4]},
                )

    baseline = _parallel(THREADS, bare)
    with db.transaction() as s:
        counts = [clusters.get_cluster(s, c).current_users for c in cluster_ids]
        drift = clusters.count_drift(s)
    print(f"placement: {n} sign-ups, {THREADS} threads, 4 clusters")
    print(f"  assign_account        {n / placed:9.0f} placements/s  ({placed:.2f} s)")
    print(f"  baseline bare INSERT  {n / baseline:9.0f} inserts/s     ({baseline:.2f} s)")
    print(f"  counts per cluster {counts} (sum {sum(counts)} = {2 * n}), drift: {drift or 'none'}")


def bench_jobs(db: Database, m: int) -> None:
    handlers: dict[str, Any] = {"noop": lambda s, a, c: None}
    results = {}
    with db.transaction() as s:  # the placements queued provisioning: not measured here
        s.execute(text("DELETE FROM hopsplane.jobs"))
    for workers in (1, 2):
        with db.transaction() as s:
            for i in range(m):
                queue.enqueue(s, "noop", {"i": i})

        def drain(_: int) -> None:
            ctx = JobContext()
            while queue.run_one(db, handlers, ctx) is not None:
                pass

        results[workers] = _parallel(workers, drain)
        with db.transaction() as s:
            left = s.execute(
                text("SELECT count(*) FROM hopsplane.jobs WHERE status = 'queued'")
            ).scalar()
            assert left == 0, left
    with db.transaction() as s:
        ids = [
            r[0]
            for r in s.execute(text("SELECT id FROM hopsplane.jobs ORDER BY id LIMIT :m"), {"m": m})
        ]
    started = time.perf_counter()
    for job_id in ids:
        with db.transaction() as s:
            s.execute(
                text("UPDATE hopsplane.jobs SET attempts = attempts + 1 WHERE id = :id"),
                {"id": job_id},
            )
    baseline = time.perf_counter() - started
    print(f"job queue: {m} no-op jobs")
    for workers, took in results.items():
        print(f"  {workers} worker(s)           {m / took:9.0f} jobs/s        ({took:.2f} s)")
    print(
        f"  baseline 1-row UPDATE {m / baseline:9.0f} transactions/s ({baseline:.2f} s, 1 thread)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--signups", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.signups, args.jobs = 20, 30
    configure_logging("WARNING", "console")
    name = f"hsp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = normalise_database_url(replace_database(args.url, name))
    try:
        migrate.upgrade(url)
        settings = Settings(db_pool_size=THREADS + 2)
        db = Database(url, settings)
        try:
            bench_placement(db, SecretBox(settings.effective_encryption_keys), args.signups)
            bench_jobs(db, args.jobs)
        finally:
            db.dispose()
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
