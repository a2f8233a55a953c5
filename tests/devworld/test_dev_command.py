"""`hopsplane dev --demo` as a newcomer meets it: one command on a fresh data folder, a
console where the demo owner signs in through the development issuer and finds a ledger,
usage, a team and a cluster, and Ctrl-C that leaves nothing running (no port held, no
child process, no embedded PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from hopsplane.cli import processes
from hopsplane.devworld import demo
from tests.live_server import free_port, wait_until_ready

pytestmark = pytest.mark.slow  # a whole world started and stopped as a process

ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _postgres_of(pgdata: Path) -> list[int]:
    """Processes of the embedded PostgreSQL kept in ``pgdata``."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"postgres" in cmd and str(pgdata).encode() in cmd:
                out.append(int(proc.name))
    return out


def sign_in(base: str, email: str) -> httpx.Client:
    """The browser's path through the development issuer, with an HTTP client."""
    client = httpx.Client(base_url=base, timeout=30)
    r = client.get("/console", follow_redirects=False)
    for _ in range(6):
        if r.status_code not in (302, 303, 307):
            break
        location = r.headers["location"]
        if "/authorize" in location:  # the issuer's page: the email, no password
            r = httpx.get(f"{location}&{urlencode({'login_hint': email})}",
                          follow_redirects=False)
            location = r.headers["location"]
        r = client.get(location, follow_redirects=False)
    assert r.status_code == 200 and str(r.url).endswith("/console"), r.text[:300]
    return client


def test_dev_demo_is_a_living_world_that_ctrl_c_stops(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hopsplane", "dev", "--demo",
                                 "--port", str(port)],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        try:
            wait_until_ready(f"{base}/readyz", 180, proc, "hopsplane dev --demo")
        except AssertionError as exc:
            raise AssertionError(log.read_text()) from exc
        printed = log.read_text()
        assert f"{base}/console" in printed and demo.OWNER.email in printed, printed

        owner = sign_in(base, demo.OWNER.email)
        ledger = owner.get("/v1/account/ledger", params={"limit": 100}).json()
        assert len(ledger["items"]) >= demo.DAYS + 1 + len(demo.TOPUPS), ledger
        for path, expected in (("/console/ledger", "100.00"),
                               ("/console/team", demo.MEMBERS[0].email),
                               ("/console/usage", demo.MEMBERS[1].name)):
            page = owner.get(path)
            assert page.status_code == 200 and expected in page.text, (path, page.text[:500])

        # the worker places the account on the stand-in and provisions its project there
        deadline = time.monotonic() + 60
        while True:
            me = owner.get("/v1/me").json()
            if me["hopsworks_project_id"] is not None:
                break
            assert time.monotonic() < deadline, me
            time.sleep(0.5)
        home = owner.get("/console").text
        assert "local-standin" in home, home
        children = _descendants(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log.read_text()
    assert "stopped: server, worker, Hopsworks stand-in, embedded PostgreSQL" in log.read_text()
    assert processes.port_problem("127.0.0.1", port) is None  # the port is free again
    leftovers = [p for p in children if Path(f"/proc/{p}").exists()]
    assert leftovers == [], leftovers
    assert _postgres_of(tmp_path / "data" / "pgdata") == []
