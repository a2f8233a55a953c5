"""Open-loop load on the API, against a bare Starlette baseline measured in the same run.

    .venv/bin/python benchmarks/api_load.py [--server postgresql://root@127.0.0.1:5432/postgres]
        [--workers 2] [--seconds 5] [--endpoints balance,ledger,usage,events] [--profile]

What it does, on a database it creates and drops on the given server:

1. migrates it and seeds ``--accounts`` account owners (the development issuer's subjects),
   each with 55 ledger entries and 30 days of usage, all assigned to one cluster with a
   usage ingestion token;
2. starts ``hopsplane serve --workers N`` (development issuer: one key for every process)
   and takes an access token per account from the issuer; captures the SQL each read
   endpoint runs (one request in-process, statements recorded) and starts the baseline: a
   bare Starlette app (``baseline_app`` below) under uvicorn with the same number of
   workers, running the same statements for the same account through the same driver
   (psycopg 3) and a pool of the same size, one transaction a request, rows as JSON;
3. per endpoint: the closed-loop capacity C (``--concurrency`` keep-alive connections);
   then open-loop runs at fixed rates (request i is due at t0 + i/rate; latency counts from
   the due time, so a server that falls behind is charged for the wait), rotating over
   the accounts' tokens, at 0.4, 0.6, 0.8 and 1.0 x C: p50/p95/p99, errors, shed (503);
   the sustained rate is the highest rate with p99 < 50 ms and nothing shed or failed.
   The same for the baseline, and hopsplane again at half the baseline's sustained rate
   (the target: p99 < 50 ms there);
4. overload: 10 s at three times capacity, then 10 s at half of it (capacity: the
   sustained rate of step 3, or C if none): how long after the overload ends until every
   0.5 s window has p99 < 50 ms with at most 1% shed or failed (normal service), and how
   many sessions sit idle in transaction once the load has stopped;
5. with ``--profile``: py-spy samples one server process during a closed-loop balance run
   and prints where its CPU goes.

The load generator is a raw asyncio HTTP/1.1 client (uvloop when installed) in this
process, sharing the machine with the servers and PostgreSQL; it stays the same for both
apps. Reads: balance (GET /v1/account/balance), ledger (GET /v1/account/ledger?limit=50),
usage (GET /v1/account/usage, 30 days). Writes: events (POST /v1/usage/events, batches of
``--batch`` new events), no baseline (its SQL is the fold function's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from usage_ingest import cpu_seconds  # noqa: E402 - one /proc reader for both benchmarks

P99_TARGET = 0.050
SECRET = "bench-secret-key-0123456789-0123456789-xx"

Request = tuple[str, str, dict[str, str], bytes]


# --- the baseline app ------------------------------------------------------------------

def baseline_app() -> Any:
    """Bare Starlette: the captured statements of an endpoint for ?account=..., in one
    transaction on a pooled psycopg connection, the last statement's rows as JSON."""
    from contextlib import asynccontextmanager

    from psycopg_pool import ConnectionPool
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    url = os.environ["BENCH_BASELINE_URL"]
    size = int(os.environ["BENCH_BASELINE_POOL"])
    captured = json.loads(Path(os.environ["BENCH_BASELINE_SQL"]).read_text())
    pool = ConnectionPool(url, min_size=size, max_size=size, open=False,
                          kwargs={"prepare_threshold": None})

    def params(template: dict[str, Any], account: str) -> dict[str, Any]:
        out = {}
        for k, v in template.items():
            if v == "$ACCOUNT":
                v = account
            elif isinstance(v, dict) and "__datetime__" in v:
                v = datetime.fromisoformat(v["__datetime__"])
            elif isinstance(v, dict) and "__date__" in v:
                v = date.fromisoformat(v["__date__"])
            out[k] = v
        return out

    def run(name: str, account: str) -> list[dict[str, Any]]:
        rows: list[Any] = []
        with pool.connection() as conn, conn.cursor() as cur:
            for sql, template in captured[name]:
                cur.execute(sql, params(template, account))
                rows = cur.fetchall() if cur.description else []
                names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in rows]

    def endpoint(name: str) -> Callable[..., Any]:
        async def answer(request: Any) -> JSONResponse:
            rows = await run_in_threadpool(run, name, request.query_params["account"])
            return JSONResponse(json.loads(json.dumps(rows, default=str)))
        return answer

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        pool.open(wait=True)
        yield
        pool.close()

    return Starlette(routes=[Route(f"/{n}", endpoint(n)) for n in captured], lifespan=lifespan)


# --- the load generator ------------------------------------------------------------------

class Http:
    """Keep-alive HTTP/1.1 connections to one port; a connection that the server closed
    while it was idle is replaced (as any client does), which is not an error."""

    def __init__(self, port: int, max_connections: int = 600) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def request(self, req: Request, timeout: float, sent: list[float] | None = None) -> int:
        method, path, headers, body = req
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        payload = head.encode() + body
        async with self.slots:
            for attempt in (1, 2):
                reused = False
                conn = None
                while self.idle:
                    r, w, since = self.idle.pop()
                    if time.monotonic() - since < 4.0:  # uvicorn closes idle ones at 5 s
                        conn, reused = (r, w), True
                        break
                    w.close()
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = conn
                if sent is not None:
                    sent.append(asyncio.get_running_loop().time())
                try:
                    writer.write(payload)
                    status, close = await asyncio.wait_for(self._response(reader), timeout)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    writer.close()
                    if reused and attempt == 1 and not isinstance(exc, asyncio.TimeoutError):
                        continue  # a stale keep-alive connection: once more on a new one
                    raise
                except BaseException:
                    writer.close()
                    raise
                if close:
                    writer.close()
                else:
                    self.idle.append((reader, writer, time.monotonic()))
                return status
        raise AssertionError("unreachable")

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "connection" and "close" in v.lower():
                close = True
        await reader.readexactly(length)
        return status, close

    def close(self) -> None:
        for _, w, _ in self.idle:
            w.close()
        self.idle.clear()


@dataclass
class Sample:
    due: float  # seconds from the start of the run
    latency: float  # from the due time to the answer
    outcome: str  # "200", "503", other status, or an error name
    lag: float = 0.0  # from the due time until the generator wrote the request


@dataclass
class Result:
    rate: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> list[float]:
        return sorted(s.latency for s in self.samples if s.outcome.startswith("2"))

    @property
    def shed(self) -> int:
        return sum(1 for s in self.samples if s.outcome == "503")

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.outcome.startswith("2") and s.outcome != "503")

    def pct(self, q: float) -> float:
        ok = self.ok
        return ok[min(len(ok) - 1, int(q * len(ok)))] if ok else float("inf")

    @property
    def sustained(self) -> bool:
        return self.pct(0.99) < P99_TARGET and self.shed == 0 and self.errors == 0

    def line(self, label: str) -> str:
        ms = [self.pct(q) * 1000 for q in (0.5, 0.95, 0.99)]
        kinds = Counter(s.outcome for s in self.samples if not s.outcome.startswith("2"))
        lags = sorted(s.lag for s in self.samples)
        lag99 = lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0
        return (f"  {label:<10} {self.rate:8.0f}/s  p50 {ms[0]:7.1f}  p95 {ms[1]:7.1f}  "
                f"p99 {ms[2]:7.1f} ms (generator lag p99 {lag99:6.1f})  ok {len(self.ok):6d}  "
                f"shed {self.shed:5d}  "
                f"errors {self.errors:4d}{'  ' + dict(kinds).__repr__() if self.errors else ''}"
                f"{'  (sustained)' if self.sustained else ''}")


async def open_loop(http: Http, make: Callable[[int], Request], phases: list[tuple[float, float]],
                    timeout: float = 10.0) -> list[Result]:
    """Phases of (rate, seconds), back to back; request i of a phase is due at the phase's
    start + i/rate."""
    loop = asyncio.get_running_loop()
    results = [Result(rate) for rate, _ in phases]
    tasks: list[asyncio.Task[None]] = []
    t0 = loop.time() + 0.05
    counter = 0

    async def one(result: Result, due: float, n: int) -> None:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent: list[float] = []
        try:
            outcome = str(await http.request(make(n), timeout, sent))
        except TimeoutError:
            outcome = "timeout"
        except Exception as exc:
            outcome = type(exc).__name__
        lag = sent[0] - due if sent else 0.0
        result.samples.append(Sample(due - t0, loop.time() - due, outcome, max(0.0, lag)))

    start = t0
    for (rate, seconds), result in zip(phases, results, strict=True):
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.create_task(one(result, start + i / rate, counter)))
            counter += 1
            if i % 200 == 0:
                await asyncio.sleep(0)
        start += seconds
    await asyncio.gather(*tasks)
    return results


async def closed_loop(http: Http, make: Callable[[int], Request], concurrency: int,
                      seconds: float) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    done = 0
    counter = iter(range(10**9))

    async def client() -> None:
        nonlocal done
        while loop.time() < end:
            status = await http.request(make(next(counter)), 30)
            if status == 200:
                done += 1

    started = loop.time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (loop.time() - started), done


def recovery_seconds(result: Result, window: float = 0.5) -> float | None:
    """Seconds from the start of ``result`` (the phase after the overload) until every
    window has p99 < 50 ms with at most 1% shed or failed; None if never within the
    phase."""
    if not result.samples:
        return None
    base = min(s.due for s in result.samples)
    windows: dict[int, list[Sample]] = {}
    for s in result.samples:
        windows.setdefault(int((s.due - base) / window), []).append(s)
    keys = sorted(windows)
    good_from = None
    for k in keys:
        w = windows[k]
        lat = sorted(s.latency for s in w)
        refused = sum(1 for s in w if not s.outcome.startswith("2"))
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        if refused > len(w) / 100 or p99 >= P99_TARGET:
            good_from = None
        elif good_from is None:
            good_from = k
    return None if good_from is None else good_from * window


# --- servers and data --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[str], path: str = "/healthz") -> None:
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def start_hopsplane(
    url: str, workers: int, pool: int, max_inflight: int | None = None, prepare: bool = True
) -> tuple[subprocess.Popen[str], int, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATABASE_URL": url, "HOPSPLANE_PORT": str(port),
            "HOPSPLANE_LOG_LEVEL": "WARNING", "HOPSPLANE_ENVIRONMENT": "development",
            "HOPSPLANE_AUTH_DEV_ISSUER": "true", "HOPSPLANE_SECRET_KEY": SECRET,
            "HOPSPLANE_DB_POOL_SIZE": str(pool)}
    if max_inflight:
        env["HOPSPLANE_WEB_MAX_INFLIGHT"] = str(max_inflight)
    if not prepare:
        env["HOPSPLANE_DB_PREPARED_STATEMENTS"] = "false"
    log = Path(tempfile.mkstemp(prefix="api_load-serve-", suffix=".log")[1])
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopsplane", "serve", "--no-upgrade", "--workers",
             str(workers)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
    try:
        wait_ready(port, proc)
    except BaseException:
        stop(proc)
        raise
    issuer = None
    for _ in range(50):
        found = re.findall(r"http://127\.0\.0\.1:\d+/", log.read_text())
        found = [u for u in found if not u.endswith(f":{port}/")]
        if found:
            issuer = found[0]
            break
        time.sleep(0.1)
    if issuer is None:
        raise SystemExit("could not find the development issuer in the server's output")
    return proc, port, issuer


def start_baseline(
    url: str, workers: int, pool: int, sql_file: Path
) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = dict(os.environ) | {"BENCH_BASELINE_URL": url, "BENCH_BASELINE_POOL": str(pool),
                              "BENCH_BASELINE_SQL": str(sql_file)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api_load:baseline_app", "--port",
         str(port), "--workers", str(workers), "--log-level", "warning"],
        env=env, cwd=ROOT / "benchmarks", text=True, start_new_session=True)
    try:
        wait_ready(port, proc, "/balance?account=none")
    except BaseException:
        stop(proc)  # not yet in the caller's list: it would outlive the run
        raise
    return proc, port


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out




def seed(url: str, accounts: int, today: date) -> tuple[list[str], list[str], str]:
    """(emails, account ids, usage ingestion token)."""
    import psycopg

    from hopsplane.credits import service as credits
    from hopsplane.credits.schemas import EntryType, Posting
    from hopsplane.crypto import SecretBox
    from hopsplane.db.engine import Database
    from hopsplane.integrations.auth0 import LocalIssuer
    from hopsplane.usage.rules import token_hash

    emails = [f"bench{i:04d}@example.com" for i in range(accounts)]
    ids = [LocalIssuer.sub_for(e) for e in emails]
    box = SecretBox(["ZGV2LWluc2VjdXJlLWZlcm5ldC1rZXktMzItYnl0ZXM="])
    token = "hpu_" + uuid.uuid4().hex + uuid.uuid4().hex
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        with conn.cursor() as cur, cur.copy("COPY users (id, email) FROM STDIN") as cp:
            for i, e in zip(ids, emails, strict=True):
                cp.write_row((i, e))
        cluster = conn.execute(
            "INSERT INTO hopsworks_clusters (name, api_url, api_key, max_users) VALUES "
            "('bench', 'http://127.0.0.1:9', %s, %s) RETURNING id",  # never called here
            (box.encrypt("k"), accounts)).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
                     "SELECT id, %s FROM users", (cluster,))
        conn.execute("INSERT INTO hopsplane.usage_ingest_tokens (cluster_id, token_sha256) "
                     "VALUES (%s, %s)", (cluster, token_hash(token)))
        conn.execute(
            "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
            "SELECT id, day, units, jsonb_build_object(id, units::text) FROM ("
            " SELECT u.id, d::date AS day, 1000 + (random() * 1000)::int AS units"
            " FROM users u, generate_series(%s::date - 29, %s::date, '1 day') d) AS rows",
            (today, today))
    db = Database(url)
    try:
        with db.transaction() as s:
            credits.post_many(s, [
                Posting(a, EntryType.GRANT, Decimal("10.00"), f"seed:{a}:{n}")
                for a in ids for n in range(55)])
    finally:
        db.dispose()
    return emails, ids, token


def tokens_for(issuer: str, emails: list[str]) -> list[str]:
    import httpx

    with httpx.Client(timeout=10) as http:
        return [http.post(f"{issuer}dev/token", data={"email": e}).json()["access_token"]
                for e in emails]


def capture_sql(url: str, ids: list[str], paths: dict[str, str]) -> dict[str, list[Any]]:
    """The statements each read endpoint runs, with the account id as a placeholder."""
    import logging

    import structlog
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from hopsplane.api.app import create_app
    from hopsplane.config import Settings
    from hopsplane.db.engine import Database
    from hopsplane.http.session_cookie import session_cookie, session_signer
    from hopsplane.sessions import service as web_sessions
    from hopsplane.sessions.schemas import SessionIdentity

    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    settings = Settings(environment="development", secret_key=SECRET, auth_dev_issuer=True,
                        _env_file=None)  # type: ignore[call-arg]
    db = Database(url, settings)
    app = create_app(settings, database=db)
    with db.transaction() as s:
        token = web_sessions.start(
            s, ids[0], SessionIdentity(ids[0], "bench0000@example.com", True, None), 3600)
    cookie = session_cookie(session_signer(settings), token)
    captured: dict[str, list[Any]] = {}
    current: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        template = {}
        for k, v in dict(parameters or {}).items():
            if v == ids[0]:
                v = "$ACCOUNT"
            elif isinstance(v, datetime):  # before date: a datetime is a date too
                v = {"__datetime__": v.isoformat()}
            elif isinstance(v, date):
                v = {"__date__": v.isoformat()}
            template[k] = v
        current.append([statement, template])

    with TestClient(app) as client:
        for name, path in paths.items():
            client.get(path, cookies={"hopsplane_session": cookie})
            current.clear()
            event.listen(db.engine, "before_cursor_execute", record)
            r = client.get(path, cookies={"hopsplane_session": cookie})
            event.remove(db.engine, "before_cursor_execute", record)
            assert r.status_code == 200, r.text
            captured[name] = list(current)
    db.dispose()
    logging.disable(logging.NOTSET)
    return captured


def idle_in_transaction(server: str, name: str) -> int:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                           "AND state LIKE 'idle in transaction%%'", (name,)).fetchone()
    return int(row[0]) if row else 0


# --- the run -------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", default="postgresql://root@127.0.0.1:5432/postgres")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pool", type=int, default=10, help="DB_POOL_SIZE of both apps")
    ap.add_argument("--max-inflight", type=int, default=None,
                    help="HOPSPLANE_WEB_MAX_INFLIGHT (default: the server's, DB_POOL_SIZE)")
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each fixed-rate run")
    ap.add_argument("--concurrency", type=int, default=8, help="closed-loop connections")
    ap.add_argument("--batch", type=int, default=100, help="events per usage batch")
    ap.add_argument("--endpoints", default="balance,ledger,usage,events")
    ap.add_argument("--via", default=None,
                    help="the apps connect through this server instead (a PgBouncer, e.g. "
                    "postgresql://root@127.0.0.1:6432/postgres); hopsplane then runs with "
                    "HOPSPLANE_DB_PREPARED_STATEMENTS=false")
    ap.add_argument("--profile", action="store_true", help="py-spy one server process")
    ap.add_argument("--profile-only", action="store_true", help="skip the load runs")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.accounts, args.workers, args.pool = 0.5, 10, 1, 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    from hopsplane.config import normalise_database_url
    from hopsplane.db import migrate
    from hopsplane.db.embedded import replace_database

    name = f"hsp_bench_api_{uuid.uuid4().hex[:8]}"
    import psycopg

    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    plain = replace_database(args.server, name)
    url = normalise_database_url(plain)
    procs: list[subprocess.Popen[str]] = []
    sql_file = Path(tempfile.mkstemp(prefix="api_load-sql-", suffix=".json")[1])
    try:
        migrate.upgrade(url)
        today = datetime.now(UTC).date()
        emails, ids, ingest_token = seed(url, args.accounts, today)
        paths = {"balance": "/v1/account/balance", "ledger": "/v1/account/ledger?limit=50",
                 "usage": f"/v1/account/usage?from={today - timedelta(days=29)}&to={today}"}
        sql_file.write_text(json.dumps(capture_sql(url, ids, paths), default=str))
        app_url = replace_database(args.via, name) if args.via else plain
        hops, hops_port, issuer = start_hopsplane(app_url, args.workers, args.pool,
                                                  args.max_inflight, prepare=not args.via)
        procs.append(hops)
        tokens = tokens_for(issuer, emails)
        base, base_port = start_baseline(app_url, args.workers, args.pool, sql_file)
        procs.append(base)
        print(f"hopsplane serve --workers {args.workers} (pool {args.pool} each) and the bare "
              f"Starlette baseline (uvicorn --workers {args.workers}, psycopg pool "
              f"{args.pool}); {args.accounts} accounts; {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.1f}; PostgreSQL at {args.server}")
        try:  # (after the servers started: they keep the normal priority)
            os.setpriority(os.PRIO_PROCESS, 0, -5)  # the generator must not be what falls behind
        except OSError:
            print("(could not raise the generator's priority: its own lag counts as latency)")
        run_id = uuid.uuid4().hex[:6]
        rng = random.Random(11)

        def hops_request(endpoint: str) -> Callable[[int], Request]:
            if endpoint == "events":
                def events(n: int) -> Request:
                    batch = [{"id": f"ev-{run_id}-{n}-{j}", "account_id": rng.choice(ids),
                              "timestamp": (datetime.now(UTC) - timedelta(
                                  minutes=rng.randrange(60 * 24 * 20))).isoformat(),
                              "compute_units": "1.5"} for j in range(args.batch)]
                    return ("POST", "/v1/usage/events",
                            {"Authorization": f"Bearer {ingest_token}",
                             "Content-Type": "application/json"},
                            json.dumps({"events": batch}).encode())
                return events
            path = paths[endpoint]

            def read(n: int) -> Request:
                return ("GET", path, {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}, b"")
            return read

        def base_request(endpoint: str) -> Callable[[int], Request]:
            def read(n: int) -> Request:
                return ("GET", f"/{endpoint}?account={ids[n % len(ids)]}", {}, b"")
            return read

        for endpoint in [] if args.profile_only else args.endpoints.split(","):
            asyncio.run(measure(endpoint, hops_port, base_port, hops, base,
                                hops_request(endpoint),
                                base_request(endpoint) if endpoint in paths else None,
                                args, name))
        if args.profile or args.profile_only:
            asyncio.run(profile(hops, hops_port, hops_request("balance"), args))
    finally:
        for p in procs:
            stop(p)
        sql_file.unlink(missing_ok=True)
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(endpoint: str, hops_port: int, base_port: int, hops: subprocess.Popen[str],
                  base: subprocess.Popen[str],
                  make: Callable[[int], Request], make_base: Callable[[int], Request] | None,
                  args: argparse.Namespace, dbname: str) -> None:
    print(f"\n== {endpoint}")
    http = Http(hops_port)
    await closed_loop(http, make, args.concurrency, 1.0)  # warm up
    pids = [hops.pid, *descendants(hops.pid)]  # one worker runs in the parent
    cpu0 = cpu_seconds(pids)
    capacity, done = await closed_loop(http, make, args.concurrency, 3.0)
    cpu = (cpu_seconds(pids) - cpu0) / max(done, 1)
    print(f"  closed loop, {args.concurrency} connections: C = {capacity:,.0f}/s "
          f"(server CPU {cpu * 1000:.2f} ms a request)")
    sustained = await search(http, make, capacity, args.seconds, "")
    print(f"  sustained (p99 < 50 ms, nothing shed or failed): {sustained:,.0f}/s")
    if make_base is not None:
        bhttp = Http(base_port)
        await closed_loop(bhttp, make_base, args.concurrency, 1.0)
        bpids = [base.pid, *descendants(base.pid)]
        bcpu0 = cpu_seconds(bpids)
        bcap, bdone = await closed_loop(bhttp, make_base, args.concurrency, 3.0)
        bcpu = (cpu_seconds(bpids) - bcpu0) / max(bdone, 1)
        print(f"  baseline closed loop: C = {bcap:,.0f}/s (server CPU {bcpu * 1000:.2f} ms a "
              "request)")
        bsustained = await search(bhttp, make_base, bcap, args.seconds, "base ")
        bhttp.close()
        print(f"  baseline sustained: {bsustained:,.0f}/s")
        if bsustained:
            (r,) = await open_loop(http, make, [(bsustained / 2, args.seconds)])
            print(r.line("half base"))
            verdict = "MET" if r.sustained else "MISSED"
            print(f"  target (hopsplane at half the baseline's sustained rate, p99 < 50 ms): "
                  f"{verdict}; hopsplane sustained / baseline sustained = "
                  f"{sustained / bsustained:.0%}")
    # "capacity" for the overload is the sustained rate (what the server serves normally),
    # or C when no rate was sustained; 3 x C of a closed loop is more than this generator
    # can offer on the same 2 cores, and its own backlog would then be what is measured.
    cap = sustained or capacity
    probes: list[tuple[str, float]] = []
    probing = asyncio.create_task(probe(hops_port, probes, 10.0))
    over, after = await open_loop(http, make, [(3 * cap, 10.0), (cap / 2, 10.0)])
    await probing
    print(over.line("3 x cap"))
    print(after.line("then cap/2"))
    kinds = Counter(k for k, _ in probes)
    print(f"  during the overload, GET /healthz and /metrics every 0.1 s: {dict(kinds)}, "
          f"slowest {max((t for _, t in probes), default=0) * 1000:.1f} ms")
    rec = recovery_seconds(after)
    recovered = f"{rec:.1f} s" if rec is not None else "NOT reached"
    await asyncio.sleep(1.0)
    idle = idle_in_transaction(args.server, dbname)
    print(f"  normal service (every 0.5 s window p99 < 50 ms, <= 1% shed or failed) "
          f"{recovered} after the overload ended "
          f"(target 5 s: {'MET' if rec is not None and rec <= 5 else 'MISSED'}); "
          f"sessions idle in transaction after the load: {idle}")
    http.close()


async def probe(port: int, out: list[tuple[str, float]], seconds: float) -> None:
    """Operations paths on a connection of their own while the overload runs."""
    http = Http(port, max_connections=1)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    paths = ("/healthz", "/metrics")
    n = 0
    while loop.time() < end:
        started = loop.time()
        try:
            status = await http.request(("GET", paths[n % 2], {}, b""), 5.0)
            out.append((str(status), loop.time() - started))
        except Exception as exc:
            out.append((type(exc).__name__, loop.time() - started))
        n += 1
        await asyncio.sleep(0.1)
    http.close()


async def search(http: Http, make: Callable[[int], Request], capacity: float, seconds: float,
                 label: str) -> float:
    """The highest rate (0.2, 0.3, ... x C) with p99 < 50 ms and nothing shed or failed;
    stops after two failing rates in a row."""
    best, misses = 0.0, 0
    for tenth in range(2, 11):
        (r,) = await open_loop(http, make, [(capacity * tenth / 10, seconds)])
        print(r.line(f"{label}{tenth / 10:.1f} x C"))
        if r.sustained:
            best, misses = max(best, r.rate), 0
        else:
            misses += 1
            if misses == 2:
                break
    return best


async def profile(hops: subprocess.Popen[str], port: int, make: Callable[[int], Request],
                  args: argparse.Namespace) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("\n(py-spy not installed: pip install py-spy for --profile)")
        return
    workers = descendants(hops.pid)
    before = {p: cpu_seconds([p]) for p in workers}
    http = Http(port)
    await closed_loop(http, make, args.concurrency, 1.0)
    target = max(workers, key=lambda p: cpu_seconds([p]) - before[p])  # a serving process
    out = Path(tempfile.mkstemp(prefix="api_load-profile-", suffix=".txt")[1])
    spy_proc = subprocess.Popen([spy, "record", "--pid", str(target), "--format", "raw",
                                 "--output", str(out), "--duration", "8", "--rate", "250",
                                 "--nonblocking", "--gil"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    await asyncio.sleep(0.5)
    rate, _ = await closed_loop(http, make, args.concurrency, 7.0)
    http.close()
    await asyncio.get_running_loop().run_in_executor(None, spy_proc.wait)
    print(f"\n== profile of one server process, closed-loop balance reads ({rate:,.0f}/s)")
    for line in summarize(out.read_text()):
        print(line)
    out.unlink(missing_ok=True)


BUCKETS = [
    ("jwt/cryptography (token check)", ("jwt/", "cryptography/")),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("psycopg", ("psycopg/", "psycopg_pool/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("fastapi", ("fastapi/",)),
    ("starlette", ("starlette/",)),
    ("anyio / threads", ("anyio/", "threading.py", "concurrent/", "queue.py")),
    ("uvicorn / asyncio", ("uvicorn/", "asyncio/", "uvloop/", "httptools/", "h11/")),
    ("logging / metrics", ("structlog/", "logging/", "prometheus_client/")),
    ("hopsplane", ("hopsplane/",)),
]


def summarize(raw: str) -> Iterator[str]:
    """Self time by package (the innermost frame's), and inclusive time of hopsplane's
    own functions, from py-spy's raw (collapsed) output."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    everything: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf = frames[-1]
        for label, needles in BUCKETS:
            if any(x in leaf for x in needles):
                own[label] += n
                break
        else:
            own["other"] += n
        for fr in set(frames):
            everything[fr] += n
        seen = set()
        for fr in frames:
            if "hopsplane/" in fr:
                fn = fr.split(" (")[0]
                if fn not in seen:
                    seen.add(fn)
                    inclusive[fn] += n
    if not total:
        yield "  (no samples)"
        return
    yield f"  {total} samples; self time by package:"
    for label, n in own.most_common():
        yield f"    {label:<34} {100 * n / total:5.1f}%"
    yield "  inclusive time of hopsplane functions (top 12):"
    for fn, n in inclusive.most_common(12):
        yield f"    {fn:<50} {100 * n / total:5.1f}%"
    if os.environ.get("BENCH_PROFILE_ALL"):
        yield "  inclusive time of any function (top 60):"
        for fn, n in everything.most_common(60):
            yield f"    {fn[:90]:<90} {100 * n / total:5.1f}%"


if __name__ == "__main__":
    threading.excepthook = lambda a: None if a.exc_type is SystemExit else sys.__excepthook__(
        a.exc_type, a.exc_value, a.exc_traceback)
    main()
