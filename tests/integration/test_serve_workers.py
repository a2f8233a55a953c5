"""`hopsplane serve --workers 2`: two processes on one port, one development issuer (one
key) for both, and a process killed with SIGKILL is replaced."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port, wait_until_ready

pytestmark = pytest.mark.slow  # served processes


ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _serving_children(pid: int) -> set[int]:
    """The uvicorn worker processes (multiprocessing also starts a resource tracker)."""
    found = set()
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"resource_tracker" not in cmdline:
            found.add(child)
    return found


def test_two_processes_share_one_issuer_and_a_killed_one_is_replaced(
    fresh_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATABASE_URL": fresh_url, "HOPSPLANE_PORT": str(port),
            "HOPSPLANE_AUTH_DEV_ISSUER": "true", "HOPSPLANE_LOG_LEVEL": "WARNING"}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopsplane", "serve", "--no-upgrade", "--workers", "2"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", 60, proc, "hopsplane serve")
        except AssertionError as exc:
            raise AssertionError(log.read_text()) from exc
        issuer = re.search(r"one issuer for all 2 processes at (http://127\.0\.0\.1:\d+/)",
                           log.read_text().replace("\n", " "))
        assert issuer, log.read_text()
        token = httpx.post(f"{issuer.group(1)}dev/token", data={"email": "w@example.com"},
                           timeout=10).json()["access_token"]
        workers = _serving_children(proc.pid)
        assert len(workers) == 2, workers

        def balance_from_each_process() -> set[int]:
            """A new connection per request: the kernel spreads them over the processes."""
            statuses = set()
            for _ in range(30):
                r = httpx.get(f"http://127.0.0.1:{port}/v1/account/balance", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
                statuses.add(r.status_code)
            return statuses

        assert balance_from_each_process() == {200}  # whichever process answers, one key
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = _serving_children(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"not replaced: {now}"
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while True:  # the replacement is up once every answer is a 200 again
            try:
                if balance_from_each_process() == {200}:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
