"""The serving path: shedding at the in-flight limit, the database being unavailable, a
broken pooled connection, unexpected errors, and what operations paths answer meanwhile.

The servers here are real (uvicorn on 127.0.0.1, in a thread of the test) where the
connection matters: keep-alive after an error answer is a property of the server, which
an in-process test client cannot see."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.http.deps import Principal
from hopsplane.observability import configure_logging
from tests.factories import session_cookie_for
from tests.live_server import KeepAlive, live_server


def _settings(base: Settings, **changes: Any) -> Settings:
    return Settings(**{**base.model_dump(), **changes, "_env_file": None})  # type: ignore[arg-type]


def _owner(db: Database) -> str:
    uid = f"auth0|{uuid.uuid4().hex[:12]}"
    with db.transaction() as s:
        s.add(User(id=uid, email=f"{uid[6:]}@example.com"))
    return uid


def _app_as_owner(settings: Settings, db: Database, owner: str) -> FastAPI:
    app = create_app(settings, database=db)
    principal = Principal(owner, "o@example.com", account_owner_id=None, is_platform_admin=False)
    app.state.authenticator = lambda _req, _s: principal
    return app


def _admin_url(db: Database) -> str:
    return db.url.replace("postgresql+psycopg://", "postgresql://")


def _error(body: bytes) -> dict[str, str]:
    parsed = json.loads(body)
    assert set(parsed) == {"error", "code", "detail"}
    return dict(parsed)


@pytest.fixture
def owner_db(fresh_db: Database) -> Iterator[tuple[Database, str]]:
    yield fresh_db, _owner(fresh_db)


def test_at_the_in_flight_limit_requests_are_shed_and_operations_paths_answer(
    owner_db: tuple[Database, str], settings: Settings
) -> None:
    db, owner = owner_db
    app = _app_as_owner(_settings(settings, web_max_inflight=3), db, owner)
    with TestClient(app) as client:
        assert client.get("/v1/account/balance").status_code == 200
        assert client.get("/readyz").status_code == 200
        admission = app.state.admission
        assert admission.limit == 3
        admission.inflight = 3  # as if three requests were being worked on
        shed = client.get("/v1/account/balance")
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert _error(shed.content)["error"] == "Unavailable"
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "hopsplane_http_shed_total 1.0" in metrics.text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "saturated" in ready.json()["detail"]
        admission.inflight = 0
        admission.last_shed = 0.0
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/account/balance").status_code == 200


def test_the_default_limit_is_the_pool(settings: Settings) -> None:
    s = _settings(settings, db_pool_size=4, db_max_overflow=2)
    assert s.max_inflight == 6
    assert _settings(s, web_max_inflight=2).max_inflight == 2


def test_a_pool_with_no_connection_to_give_answers_503_quickly(
    owner_db: tuple[Database, str], settings: Settings
) -> None:
    _, owner = owner_db
    tiny = _settings(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.3,
                     web_max_inflight=5)
    db = Database(owner_db[0].url, tiny)
    try:
        app = _app_as_owner(tiny, db, owner)
        with TestClient(app) as client, db.engine.connect() as held:
            held.execute(text("SELECT 1"))  # the only connection of the pool
            started = time.monotonic()
            r = client.get("/v1/account/balance")
            assert time.monotonic() - started < 5
            assert r.status_code == 503 and r.headers["retry-after"]
            assert _error(r.content)["error"] == "Unavailable"
        with TestClient(app) as client:  # the connection is back: normal service
            assert client.get("/v1/account/balance").status_code == 200
    finally:
        db.dispose()


def test_a_refused_database_is_503_and_the_connection_stays_open(
    settings: Settings,
) -> None:
    dead = Database("postgresql://nobody@127.0.0.1:1/none", settings)
    app = _app_as_owner(settings, dead, "auth0|nobody")
    with live_server(app) as port:
        conn = KeepAlive(port)
        for _ in range(3):
            status, headers, body = conn.request("GET", "/v1/account/balance")
            assert status == 503 and headers["retry-after"] == "2"
            assert _error(body) == {"error": "Unavailable", "code": "unavailable",
                                    "detail": "the database is unavailable; retry shortly"}
        assert conn.request("GET", "/healthz")[0] == 200  # same connection, still open
        conn.close()
    dead.dispose()


@pytest.mark.slow  # a storm against a served app
def test_terminated_backends_under_load_give_200_or_503_never_500_and_keep_alive(
    owner_db: tuple[Database, str], settings: Settings
) -> None:
    db, owner = owner_db
    app = _app_as_owner(settings, db, owner)
    statuses: dict[int, int] = {}
    stop = threading.Event()

    def killer() -> None:
        with psycopg.connect(_admin_url(db), autocommit=True) as admin:
            while not stop.is_set():
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'hopsplane'"
                )
                # every 20 ms: often enough that requests are cut in the middle, not so
                # often that no balance read (more statements since the promotional
                # part joined it) can finish on a loaded machine
                time.sleep(0.02)

    with live_server(app) as port:
        clients = [KeepAlive(port) for _ in range(4)]

        def drive(conn: KeepAlive) -> None:
            for _ in range(60):
                status, headers, body = conn.request("GET", "/v1/account/balance")
                statuses[status] = statuses.get(status, 0) + 1
                if status == 503:
                    assert headers["retry-after"] and _error(body)["error"] == "Unavailable"

        kill = threading.Thread(target=killer)
        kill.start()
        drivers = [threading.Thread(target=drive, args=(c,)) for c in clients]
        try:
            for t in drivers:
                t.start()
            for t in drivers:
                t.join()
        finally:
            stop.set()
            kill.join()
        # every client kept its one connection throughout, and service is normal again
        for c in clients:
            assert c.request("GET", "/v1/account/balance")[0] == 200
            c.close()
    assert set(statuses) <= {200, 503}, statuses
    assert sum(statuses.values()) == 240
    assert statuses.get(200, 0) > 0


def test_a_broken_pooled_connection_is_replaced_and_the_request_run_again(
    owner_db: tuple[Database, str], settings: Settings
) -> None:
    db, owner = owner_db
    app = _app_as_owner(settings, db, owner)
    killed: list[int] = []

    def kill_own_backend_once(conn: Any, cursor: Any, *_args: Any) -> None:
        if killed:
            return
        pid = conn.connection.dbapi_connection.info.backend_pid
        killed.append(pid)
        with psycopg.connect(_admin_url(db), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone():
                time.sleep(0.01)

    with TestClient(app) as client:
        assert client.get("/v1/account/balance").status_code == 200  # a pooled connection
        event.listen(db.engine, "before_cursor_execute", kill_own_backend_once)
        try:
            r = client.get("/v1/account/balance")
        finally:
            event.remove(db.engine, "before_cursor_execute", kill_own_backend_once)
        assert killed, "the backend was not terminated"
        assert r.status_code == 200, r.text
        assert "hopsplane_db_retries_total 1.0" in client.get("/metrics").text


def test_an_unexpected_error_is_a_500_in_the_error_shape_that_keeps_the_connection(
    owner_db: tuple[Database, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    db, owner = owner_db
    app = _app_as_owner(settings, db, owner)
    router = APIRouter()

    @router.get("/t/boom")
    def boom() -> None:
        api_key = "sk_live_" + "do_not_print_me"  # noqa: F841 - a local that must not be logged
        raise RuntimeError("boom")

    app.include_router(router)
    configure_logging("INFO", "console")
    with live_server(app) as port:
        conn = KeepAlive(port)
        status, headers, body = conn.request("GET", "/t/boom", {"X-Request-ID": "rid-1"})
        assert status == 500 and headers["x-request-id"] == "rid-1"
        assert _error(body) == {"error": "InternalError", "code": "internal_error",
                                "detail": "internal error (request id rid-1)"}
        assert conn.request("GET", "/v1/account/balance")[0] == 200  # same connection
        conn.close()
    logged = capsys.readouterr().err
    assert "RuntimeError: boom" in logged
    assert "sk_live_do_not_print_me" not in logged
    assert logged.count("Traceback") == 1  # logged once, by the app, not again by uvicorn


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_error_logs_never_print_local_variables(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    configure_logging("INFO", fmt)

    def handler(password: str) -> None:
        token = "tok_" + "secret_value"  # noqa: F841 - a local that must not be logged
        raise ValueError("bad")

    try:
        handler("hunter2" + "-secret")
    except ValueError:
        structlog.get_logger("t").exception("failed")
        logging.getLogger("uvicorn.error").exception("failed in the server")
    err = capsys.readouterr().err
    assert "ValueError: bad" in err
    assert "hunter2-secret" not in err and "tok_secret_value" not in err


@pytest.mark.slow  # a storm of 300 clients against a served app
def test_a_burst_of_clients_that_give_up_leaves_the_server_serving(
    owner_db: tuple[Database, str], settings: Settings
) -> None:
    """The pool wedge, small: a pool of 2, a burst of 300 requests whose clients give
    up after a second. Before, every request took a thread, the ones holding connections
    queued behind them for their next thread, and the server answered only pool timeouts
    (30 s each) long after the burst. Now the burst is shed and service is normal at once."""
    import asyncio

    db, owner = owner_db
    tiny = _settings(settings, db_pool_size=2, db_max_overflow=0, auth_dev_issuer=True,
                     environment="development")
    pool = Database(db.url, tiny)
    app = create_app(tiny, database=pool)  # the real authenticator: sign-in reads the DB
    cookie = session_cookie_for(db, tiny.effective_secret_keys, owner, f"{owner[6:]}@example.com")
    request = (f"GET /v1/account/balance HTTP/1.1\r\nHost: t\r\n"
               f"Cookie: hopsplane_session={cookie}\r\n\r\n").encode()

    async def one(port: int, timeout: float) -> str:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            return type(exc).__name__
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            return head.split(b" ", 2)[1].decode()
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            return type(exc).__name__
        finally:
            writer.close()

    async def burst(port: int) -> list[str]:
        return list(await asyncio.gather(*(one(port, 1.0) for _ in range(300))))

    try:
        with live_server(app) as port:
            outcomes = asyncio.run(burst(port))
            assert "503" in outcomes, set(outcomes)  # shed, not queued
            time.sleep(0.5)
            started = time.monotonic()
            after = [asyncio.run(one(port, 10.0)) for _ in range(5)]
            assert after == ["200"] * 5, after
            assert time.monotonic() - started < 5
            with psycopg.connect(_admin_url(db), autocommit=True) as admin:
                idle = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'").fetchone()
            assert idle == (0,)
    finally:
        pool.dispose()
