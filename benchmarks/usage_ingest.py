"""Usage ingestion throughput: events per second through POST /v1/usage/events.

What it does, on a database it creates and drops on the given server:
  1. migrates it, seeds a cluster, account owners (some with members) assigned to it, and
     the cluster's ingestion token;
  2. builds the events (unique ids, a share of them resent as duplicates in later batches,
     half given in compute units, half in CPU seconds, some attributed to members) and
     encodes the batches before the clock starts;
  3. starts `hopsplane serve` (uvicorn) on 127.0.0.1 and posts the batches with N
     concurrent clients (real HTTP, `Authorization: Bearer <cluster token>`). Each request
     stores the new events AND folds them into usage_tracking before it answers, so the
     time from the first request to the last answer is ingestion plus folding;
  4. checks the totals: every (account, day) of usage_tracking against the sum computed
     here with Decimal from the unique events, the breakdowns, and the event count;
  5. baseline, same run, same machine: COPY of the same events (duplicates included) into an
     unindexed table from one connection.

    .venv/bin/python benchmarks/usage_ingest.py [--server postgresql://root@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg

from hopsplane.config import normalise_database_url
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database
from hopsplane.usage.rules import token_hash, units_from_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", default="postgresql://root@127.0.0.1:5432/postgres")
    ap.add_argument("--events", type=int, default=200_000, help="events sent (with duplicates)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duplicates", type=float, default=0.10)
    ap.add_argument("--accounts", type=int, default=500)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = ap.parse_args()
    if args.smoke:
        args.events, args.batch, args.clients, args.accounts, args.days = 2000, 100, 2, 20, 2

    name = f"hsp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = replace_database(args.server, name)
    server = None
    try:
        migrate.upgrade(normalise_database_url(url))
        token, owners, members = seed(url, args.accounts)
        batches, unique, expected = build_events(args, owners, members)
        bodies = [json.dumps({"events": b}).encode() for b in batches]
        sent = sum(len(b) for b in batches)
        print(f"events: {sent:,} sent in {len(bodies)} batches of {args.batch} "
              f"({sent - len(unique):,} duplicates), {args.accounts} accounts "
              f"({len(members)} with a member), {args.days} days, {args.clients} clients")

        port = free_port()
        server = start_server(url, port)
        # the server forks its workers: count every process of its tree, read while alive
        server_cpu = cpu_seconds(process_tree(server.pid))
        elapsed = post_all(f"http://127.0.0.1:{port}", token, bodies, args.clients)
        server_cpu = cpu_seconds(process_tree(server.pid)) - server_cpu
        backends = [p for (p,) in psycopg.connect(args.server, autocommit=True).execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,))]
        pg_cpu = cpu_seconds(backends)  # the pool's backends were started by this run
        check_totals(url, expected, len(unique))
        api_rate = sent / elapsed
        print(f"POST /v1/usage/events, stored and folded: {elapsed:.2f} s, "
              f"{api_rate:,.0f} events/s ({len(unique) / elapsed:,.0f} new events/s)")

        used = server_cpu + pg_cpu
        print(f"CPU used: server {server_cpu:.2f} s + PostgreSQL backends {pg_cpu:.2f} s = "
              f"{sent / used:,.0f} events per CPU-second (this machine was shared: load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; with both cores "
              f"free that is up to {2 * sent / used:,.0f} events/s)")

        copy_s = copy_baseline(url, batches)
        print(f"baseline, COPY into an unindexed table (one connection, no dedup, no fold): "
              f"{copy_s:.2f} s, {sent / copy_s:,.0f} events/s")
        print(f"ratio API / COPY: {api_rate / (sent / copy_s):.2f}; "
              f"target >= 20,000 events/s end to end: {'MET' if api_rate >= 20_000 else 'MISSED'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, accounts: int) -> tuple[str, list[str], dict[str, str]]:
    box = SecretBox([os.environ.get("BENCH_KEY", "ZGV2LWluc2VjdXJlLWZlcm5ldC1rZXktMzItYnl0ZXM=")])
    owners = [f"auth0|owner{i:05d}" for i in range(accounts)]
    members = {f"auth0|member{i:05d}": owners[i] for i in range(0, accounts, 5)}
    token = "hpu_" + uuid.uuid4().hex + uuid.uuid4().hex
    with psycopg.connect(url) as conn:
        cluster = conn.execute(
            "INSERT INTO hopsworks_clusters (name, api_url, api_key, max_users) VALUES "
            "('bench', 'https://hw.example.com', %s, %s) RETURNING id",
            (box.encrypt("k"), accounts),
        ).fetchone()[0]  # type: ignore[index]
        users = "COPY users (id, email, account_owner_id) FROM STDIN"
        with conn.cursor() as cur, cur.copy(users) as cp:
            for o in owners:
                cp.write_row((o, f"{o[6:]}@example.com", None))
        with conn.cursor() as cur, cur.copy(users) as cp:
            for m, o in members.items():
                cp.write_row((m, f"{m[6:]}@example.com", o))
        conn.execute(
            "INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
            "SELECT id, %s FROM users WHERE account_owner_id IS NULL", (cluster,))
        conn.execute("INSERT INTO hopsplane.usage_ingest_tokens (cluster_id, token_sha256) "
                     "VALUES (%s, %s)", (cluster, token_hash(token)))
    return token, owners, members


def build_events(
    args: argparse.Namespace, owners: list[str], members: dict[str, str]
) -> tuple[list[list[dict[str, object]]], list[dict[str, object]], dict[tuple[str, str], Decimal]]:
    rng = random.Random(args.seed)
    n_unique = round(args.events * (1 - args.duplicates))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    member_ids = list(members)
    unique: list[dict[str, object]] = []
    expected: dict[tuple[str, str], Decimal] = {}
    for i in range(n_unique):
        at = start + timedelta(seconds=rng.randrange(args.days * 86400))
        if rng.random() < 0.2:
            who = rng.choice(member_ids)
            owner = members[who]
        else:
            who = owner = rng.choice(owners)
        event: dict[str, object] = {"id": f"ev-{i:09d}", "account_id": who,
                                    "timestamp": at.isoformat().replace("+00:00", "Z")}
        if i % 2:
            units = Decimal(rng.randrange(1, 10**7)) / 10000
            event["compute_units"] = str(units)
        else:
            seconds = Decimal(rng.randrange(1, 10**6)) / 1000
            event["cpu_seconds"] = str(seconds)
            units = units_from_cpu_seconds(seconds)
        key = (owner, at.date().isoformat())
        expected[key] = expected.get(key, Decimal(0)) + units
        unique.append(event)
    stream = list(unique)
    rng.shuffle(stream)
    # duplicates: copies of events resent later (a retried batch, an agent restarting)
    for _ in range(args.events - n_unique):
        position = rng.randrange(len(stream))
        stream.insert(min(len(stream), position + rng.randrange(1, 5000)), stream[position])
    batches = [stream[i:i + args.batch] for i in range(0, len(stream), args.batch)]
    return batches, unique, expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATABASE_URL": url, "HOPSPLANE_PORT": str(port),
            "HOPSPLANE_LOG_LEVEL": "WARNING", "HOPSPLANE_ENVIRONMENT": "development"}
    proc = subprocess.Popen([sys.executable, "-m", "hopsplane", "serve", "--no-upgrade"],
                            env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not start")


def post_all(base: str, token: str, bodies: list[bytes], clients: int) -> float:
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    _i, body = queue.pop(0)
                r = http.post("/v1/usage/events", content=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:300]}")
                    return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"requests failed: {failures[:3]}")
    return elapsed


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    out = [pid]
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def check_totals(url: str, expected: dict[tuple[str, str], Decimal], unique: int) -> None:
    with psycopg.connect(url) as conn:
        got = {(a, d.isoformat()): Decimal(u) for a, d, u in conn.execute(
            "SELECT account_owner_id, date, compute_units FROM usage_tracking")}
        events = conn.execute("SELECT count(*) FROM hopsplane.usage_events").fetchone()[0]  # type: ignore[index]
        unmatched = conn.execute(
            "SELECT count(*) FROM hopsplane.usage_events WHERE status <> 'folded'").fetchone()[0]  # type: ignore[index]
        broken = conn.execute(
            "SELECT count(*) FROM usage_tracking "
            "WHERE hopsplane.breakdown_total(user_breakdown) <> compute_units").fetchone()[0]  # type: ignore[index]
    problems = []
    if got != expected:
        wrong = [k for k in expected.keys() | got.keys() if got.get(k) != expected.get(k)]
        problems.append(f"{len(wrong)} (account, day) totals differ, e.g. {wrong[:3]}")
    if events != unique:
        problems.append(f"{events} events stored, {unique} expected")
    if unmatched or broken:
        problems.append(f"{unmatched} unmatched events, {broken} broken breakdowns")
    if problems:
        raise SystemExit("TOTALS WRONG: " + "; ".join(problems))
    total = sum(expected.values(), Decimal(0))
    print(f"totals exact: {len(expected):,} (account, day) rows, {total:,} units, "
          f"{events:,} events stored, breakdowns sum to the units")


def copy_baseline(url: str, batches: list[list[dict[str, object]]]) -> float:
    rows = [(e["id"], e["account_id"], e["timestamp"], e.get("compute_units"),
             e.get("cpu_seconds")) for b in batches for e in b]
    with psycopg.connect(url) as conn:
        conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS copy_baseline (event_id text, "
                     "account_id text, occurred_at timestamptz, compute_units numeric, "
                     "cpu_seconds numeric)")
        conn.execute("ALTER TABLE copy_baseline SET LOGGED")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
            "COPY copy_baseline (event_id, account_id, occurred_at, compute_units, cpu_seconds) "
            "FROM STDIN"
        ) as cp:
            for row in rows:
                cp.write_row(row)
        conn.commit()
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
