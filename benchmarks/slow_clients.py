"""Ordinary clients while slow ones hold connections, against the same server without them
(the baseline, measured in the same run).

    .venv/bin/python benchmarks/slow_clients.py [--server postgresql://root@127.0.0.1:5432/postgres]
        [--slow-bodies 200] [--slow-readers 50] [--requests 300] [--inflight 20]

On a database it creates and drops on the given server: migrates it, starts
``hopsplane serve --workers 1`` (development issuer, ``WEB_MAX_INFLIGHT`` = ``--inflight``,
body and header deadlines long enough that no slow client is cut during the run), then

1. baseline: ``--requests`` balance reads, one keep-alive connection, one after the other:
   statuses, p50/p99 latency;
2. opens ``--slow-bodies`` connections that send a header and one byte of a 100-byte body
   to the anonymous Stripe webhook, and ``--slow-readers`` connections that ask (pipelined)
   for a year's usage CSV and megabytes of the OpenAPI document through a 4 KiB receive
   buffer and never read;
3. the same reads again, plus ``/readyz``, with those connections open.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reads(client: httpx.Client, n: int) -> tuple[Counter[int], float, float]:
    statuses: Counter[int] = Counter()
    took = []
    for _ in range(n):
        started = time.perf_counter()
        statuses[client.get("/v1/account/balance").status_code] += 1
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statuses, statistics.median(took), took[int(len(took) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--slow-bodies", type=int, default=200)
    parser.add_argument("--slow-readers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, tiny data: only shows the script runs "
                        "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.slow_bodies, args.slow_readers, args.requests = 5, 2, 20

    name = f"bench_slow_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.server.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATABASE_URL": url, "HOPSPLANE_PORT": str(port),
            "HOPSPLANE_AUTH_DEV_ISSUER": "true", "HOPSPLANE_LOG_LEVEL": "WARNING",
            "HOPSPLANE_WEB_BODY_TIMEOUT_SECONDS": "300",
            "HOPSPLANE_WEB_HEADER_TIMEOUT_SECONDS": "300",
            "HOPSPLANE_WEB_MAX_INFLIGHT": str(args.inflight)}
    log = Path(f"/tmp/{name}.log")
    held: list[socket.socket] = []
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopsplane", "serve", "--workers", "1"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log.read_text())
            time.sleep(0.3)
        issuer = re.search(r"(http://127\.0\.0\.1:\d+/)\S*dev/token",
                           log.read_text().replace("\n", " "))
        if issuer is None:
            raise SystemExit("no development issuer in the log:\n" + log.read_text())
        token = httpx.post(f"{issuer.group(1)}dev/token", data={"email": "bench@example.com"},
                           timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            client.get("/v1/account/balance")  # sign-up
            spec_size = len(client.get("/openapi.json").content)
            baseline = reads(client, args.requests)

            for _ in range(args.slow_bodies):
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(b"POST /v1/stripe/webhook HTTP/1.1\r\nHost: b\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                held.append(sock)
            export = (f"GET /v1/account/usage.csv?from=2026-01-01&to=2026-12-31 HTTP/1.1\r\n"
                      f"Host: b\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
            spec = b"GET /openapi.json HTTP/1.1\r\nHost: b\r\n\r\n"
            for _ in range(args.slow_readers):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.sendall(export + spec * max(8, (8 << 20) // spec_size))
                held.append(sock)
            time.sleep(2)
            loaded = reads(client, args.requests)
            ready = client.get("/readyz").status_code

        print(f"hopsplane serve --workers 1, WEB_MAX_INFLIGHT={args.inflight}; "
              f"{args.requests} balance reads on one keep-alive connection")
        print(f"{'':44} {'statuses':>18} {'p50 ms':>8} {'p99 ms':>8}")
        for label, (statuses, p50, p99) in (
                ("baseline (no slow clients)", baseline),
                (f"{args.slow_bodies} slow bodies + {args.slow_readers} slow readers", loaded)):
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
            print(f"{label:44} {shown:>18} {p50:8.1f} {p99:8.1f}")
        print(f"/readyz with the slow clients open: {ready}")
    finally:
        for sock in held:
            sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
