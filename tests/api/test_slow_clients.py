"""Slow and vanishing clients: a body that never finishes, a header that never finishes, an
answer nobody reads, a client that hangs up. None of them may hold the capacity other
clients are served with, and none is an unhandled error.

The fast tests run a real uvicorn in a thread (the connection is what matters); the slow
proof runs `hopsplane serve` as a process and holds 200 slow bodies and 50 slow readers
open against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.api.protocol import HEADER_TIMEOUT_ENV, HeaderDeadlineProtocol
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.http.deps import Principal
from hopsplane.observability import configure_logging
from tests.live_server import KeepAlive, free_port, live_server, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]


def _settings(base: Settings, **changes: Any) -> Settings:
    return Settings(**{**base.model_dump(), **changes, "_env_file": None})  # type: ignore[arg-type]


def _app_as_owner(settings: Settings, db: Database) -> FastAPI:
    uid = f"auth0|{uuid.uuid4().hex[:12]}"
    with db.transaction() as s:
        s.add(User(id=uid, email=f"{uid[6:]}@example.com"))
    app = create_app(settings, database=db)
    principal = Principal(uid, "o@example.com", account_owner_id=None, is_platform_admin=False)
    app.state.authenticator = lambda _req, _s: principal
    return app


def _slow_body(port: int, path: str = "/v1/stripe/webhook") -> socket.socket:
    """Headers and one byte of a 100-byte body; the rest never comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 100\r\n\r\n{{".encode())
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_bodies_hold_no_place_in_flight_and_are_answered_408(
    fresh_db: Database, settings: Settings
) -> None:
    app = _app_as_owner(_settings(settings, web_max_inflight=3, web_body_timeout_seconds=2),
                        fresh_db)
    with live_server(app) as port:
        slow = [_slow_body(port) for _ in range(10)]  # more than the limit of 3
        try:
            conn = KeepAlive(port)
            for _ in range(5):
                assert conn.request("GET", "/v1/account/balance")[0] == 200
            status, _, body = conn.request("GET", "/readyz")
            assert status == 200, body
            assert app.state.admission.inflight == 0
            conn.close()
            for sock in slow:  # each is refused once its deadline passes, and closed
                answer = _read_all(sock)
                assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
                assert b'"error": "RequestTimeout"' in answer
        finally:
            for sock in slow:
                sock.close()


def test_a_body_larger_than_the_limit_is_413_before_it_is_read(
    fresh_db: Database, settings: Settings
) -> None:
    app = _app_as_owner(_settings(settings, web_max_body_bytes=64 * 1024), fresh_db)
    with TestClient(app) as client:
        answer = client.post("/v1/stripe/webhook", content=b"{" + b" " * (65 * 1024) + b"}")
        assert answer.status_code == 413
        assert answer.json()["error"] == "PayloadTooLarge"
        assert client.get("/v1/account/balance").status_code == 200


def test_a_client_that_hangs_up_is_a_499_line_not_an_error(
    fresh_db: Database, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app_as_owner(settings, fresh_db)
    configure_logging("INFO", "json")
    with live_server(app) as port:
        for _ in range(3):
            _slow_body(port).close()  # gone before its body arrived
        conn = KeepAlive(port)
        assert conn.request("GET", "/v1/account/balance")[0] == 200  # after the hang-ups
        conn.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
                     if line.startswith("{")]
            if sum(1 for r in lines if r.get("status") == 499) >= 3:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no 499 line for the clients that hung up")
    assert not [r for r in lines if r.get("level") == "error"], lines
    assert "ClientDisconnect" not in json.dumps(lines)


def test_a_connection_whose_header_never_finishes_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "1")
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"ok": "yes"}

    with live_server(app, http=HeaderDeadlineProtocol) as port:
        idle = socket.create_connection(("127.0.0.1", port), timeout=30)
        half = socket.create_connection(("127.0.0.1", port), timeout=30)
        half.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n")  # never the blank line
        kept = KeepAlive(port)
        assert kept.request("GET", "/ok")[0] == 200
        # closed by the server, with nothing written (both recv return at EOF)
        assert _read_all(idle) == b""
        assert _read_all(half) == b""
        idle.close()
        half.close()
        kept.close()


# ---------------------------------------------------------------- the served process


def _send_slowly_readable(port: int, requests: list[bytes]) -> socket.socket:
    """A connection that asks for many answers (pipelined) and never reads one."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"".join(requests))
    return sock


@pytest.mark.slow
def test_200_slow_bodies_and_50_slow_readers_leave_other_clients_served(
    fresh_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATABASE_URL": fresh_url, "HOPSPLANE_PORT": str(port),
            "HOPSPLANE_AUTH_DEV_ISSUER": "true", "HOPSPLANE_LOG_LEVEL": "INFO",
            "HOPSPLANE_LOG_FORMAT": "json",
            # the slow clients stay open for the whole test: no deadline ends them early
            "HOPSPLANE_WEB_BODY_TIMEOUT_SECONDS": "300",
            "HOPSPLANE_WEB_HEADER_TIMEOUT_SECONDS": "300",
            "HOPSPLANE_WEB_MAX_INFLIGHT": "20"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopsplane", "serve", "--no-upgrade", "--workers", "1"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    held: list[socket.socket] = []
    try:
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", 60, proc, "hopsplane serve")
        except AssertionError as exc:
            raise AssertionError(log.read_text()) from exc
        issuer = _issuer_url(log)
        token = httpx.post(f"{issuer}dev/token", data={"email": "slow@example.com"},
                           timeout=10).json()["access_token"]
        auth = f"Authorization: Bearer {token}\r\n"
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/v1/account/balance", headers=headers,
                         timeout=10).status_code == 200
        spec_size = len(httpx.get(f"{base}/openapi.json", timeout=10).content)

        for _ in range(200):
            held.append(_slow_body(port))
        export = (f"GET /v1/account/usage.csv?from=2026-01-01&to=2026-12-31 HTTP/1.1\r\n"
                  f"Host: t\r\n{auth}\r\n").encode()
        spec = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n"
        # Enough asked for that the answers cannot all fit in the socket buffers: each
        # reader's server side ends up waiting on a client that does not read.
        per_reader = max(8, (8 * 1024 * 1024) // max(spec_size, 1))
        for _ in range(50):
            held.append(_send_slowly_readable(port, [export] + [spec] * per_reader))

        # Every reader has been answered into its socket (and, with megabytes asked for
        # and a few kilobytes of buffer, the server waits on it to read the rest).
        deadline = time.monotonic() + 60
        while sum(1 for sock in held[200:] if _unread(sock) > 0) < 50:
            assert time.monotonic() < deadline, "the slow readers were never answered"
            time.sleep(0.2)

        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            answers = [client.get("/v1/account/balance").status_code for _ in range(30)]
            answers += [client.get("/v1/account/usage.csv",
                                   params={"from": "2026-01-01", "to": "2026-01-31"}).status_code
                        for _ in range(5)]
            ready = client.get("/readyz")
        assert answers == [200] * 35, answers
        assert ready.status_code == 200, ready.text
        assert proc.poll() is None
    finally:
        for sock in held:
            sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text()
    assert "ClientDisconnect" not in text and '"level": "error"' not in text, text[-3000:]


def _unread(sock: socket.socket) -> int:
    import fcntl
    import struct
    import termios

    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def _issuer_url(log: Path) -> str:
    import re

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"(http://127\.0\.0\.1:\d+/)\S*dev/token",
                          log.read_text().replace("\n", " "))
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(log.read_text())
