"""What identity costs per request, on a real PostgreSQL server.

    .venv/bin/python benchmarks/auth.py [--url postgresql://root@127.0.0.1:5432/postgres]
        [--seconds 3]

Creates a scratch database (dropped at the end), migrates it, starts the app with the local
development issuer (real RSA-2048 keys, JWKS over HTTP) and measures, in one process:

1. access-token verification (`TokenVerifier.verify`, JWKS cached) per second, against the
   baseline of a bare `jwt.decode` with the public key already in hand (what verification
   cannot go below);
2. authenticated `GET /v1/me` per second through the whole stack (ASGI in-process: token
   check, sign-in lookup, last_login_at rule, profile read, one transaction), against the
   baseline of `GET /healthz` through the same stack (no identity, no database);
3. invite creation (`POST /v1/team/invites`: rate-limit counter in its own transaction,
   hash, insert, mail to the log mailer) per second.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
import psycopg
import structlog
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.config import Settings, normalise_database_url
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database
from hopsplane.db.engine import Database
from hopsplane.integrations.email import LogMailer


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed, n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--smoke", action="store_true",
                    help="seconds, tiny data: checks that the benchmark runs "
                    "(tests/benchmarks/test_smoke.py)")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 0.3
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    name = f"hsp_bench_auth_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = normalise_database_url(replace_database(args.url, name))
    try:
        migrate.upgrade(url)
        settings = Settings(environment="development", auth_dev_issuer=True,
                            rate_limit_invites_per_hour=10**9, _env_file=None)  # type: ignore[call-arg]
        db = Database(url, settings)
        app = create_app(settings, database=db)
        app.state.mailer = LogMailer()
        with TestClient(app) as client:
            identity = app.state.identity
            issuer = identity.dev_issuer
            token = issuer.issue("bench|owner", email="owner@bench.example")
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/v1/me", headers=headers).status_code == 200
            public_key = identity.verifier.jwks.key(issuer.current_kid)

            verify_rate, _ = rate(lambda: identity.verifier.verify(token), args.seconds)
            bare_rate, _ = rate(lambda: jwt.decode(
                token, public_key, algorithms=["RS256"], audience=issuer.audience,
                issuer=issuer.issuer), args.seconds)
            me_rate, _ = rate(lambda: client.get("/v1/me", headers=headers), args.seconds)
            health_rate, _ = rate(lambda: client.get("/healthz"), args.seconds)
            counter = iter(range(10**9))
            invite_rate, invites = rate(lambda: client.post(
                "/v1/team/invites", headers=headers,
                json={"email": f"i{next(counter)}@bench.example"}), args.seconds)
            print(f"token verification (cached JWKS): {verify_rate:10,.0f}/s")
            print(f"  baseline bare jwt.decode:       {bare_rate:10,.0f}/s "
                  f"(overhead {100 * (bare_rate / verify_rate - 1):.1f}%)")
            print(f"GET /v1/me (token + DB):          {me_rate:10,.0f}/s "
                  f"({1000 / me_rate:.2f} ms each)")
            print(f"  baseline GET /healthz:          {health_rate:10,.0f}/s "
                  f"({1000 / health_rate:.2f} ms each)")
            print(f"POST /v1/team/invites:            {invite_rate:10,.0f}/s ({invites} invites)")
            print(f"JWKS fetches during the run:      {issuer.jwks_requests}")
        db.dispose()
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    main()
