"""`hopsplane serve` as an operator meets it: its server processes stop when it is killed
with SIGKILL, and a port that is taken is named at once, before any database work, with
the processes that hold it (server processes a killed `serve` left behind included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hopsplane.cli import processes
from tests.live_server import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/nothing"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    return env | {"HOPSPLANE_LOG_LEVEL": "WARNING", **extra}


def _serve(*args: str, env: dict[str, str], timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hopsplane", "serve", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose (its parent has not reaped it yet)
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.slow
def test_workers_die_with_a_killed_serve(fresh_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    workers: list[int] = []
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopsplane", "serve", "--no-upgrade", "--workers", "2"],
            env=_env(HOPSPLANE_DATABASE_URL=fresh_url, HOPSPLANE_PORT=str(port)),
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", 90, proc, "hopsplane serve")
        except AssertionError as exc:
            raise AssertionError(log.read_text()) from exc
        workers = [p for p in _children(proc.pid)
                   if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30  # a generous bound for a loaded machine
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
        assert not left, f"server processes outlived their serve: {left}\n{log.read_text()}"
        with socket.socket() as s:  # and the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # a failed proof leaves nothing behind
            if _alive(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.slow
def test_a_taken_port_is_named_before_any_database_work(
    listening: int, tmp_path: Path
) -> None:
    # an unreachable database: had serve touched it first, the message would be about it
    r = _serve(env=_env(HOPSPLANE_DATABASE_URL=UNREACHABLE_DB, HOPSPLANE_PORT=str(listening)))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"port {listening} is already in use by pid {os.getpid()}" in " ".join(
        r.stderr.split()), r.stderr
    assert "--port" in r.stderr and "Traceback" not in r.stderr
    assert "database" not in r.stderr and "schema" not in r.stdout
    # with the embedded database: it is not even started
    data = tmp_path / "data"
    r = _serve("--port", str(listening),
               env=_env(HOPSPLANE_DATA_DIR=str(data)))
    assert r.returncode == 1 and "already in use" in r.stderr, r.stderr
    assert not data.exists() or not any(data.iterdir())


@pytest.mark.slow
def test_serve_refuses_next_to_server_processes_a_killed_serve_left(tmp_path: Path) -> None:
    """A worker of a `serve` that is gone (simulated: a process carrying the workers'
    marker, listening on the port, whose recorded parent has exited) is named with its
    parent, and serve does not start."""
    port = free_port()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    marker = processes.worker_marker(gone.pid, port, "127.0.0.1")
    ready = tmp_path / "listening"
    orphan = subprocess.Popen(
        [sys.executable, "-c",
         "import socket, sys, time, pathlib\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(('127.0.0.1', {port})); s.listen()\n"
         f"pathlib.Path({str(ready)!r}).touch(); time.sleep(120)"],
        env={**os.environ, processes.WORKER_OF_ENV: marker})
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert orphan.poll() is None and time.monotonic() < deadline, "orphan not up"
            time.sleep(0.05)
        assert [w.pid for w in processes.orphaned_workers(port)] == [orphan.pid]
        r = _serve(env=_env(HOPSPLANE_DATABASE_URL=UNREACHABLE_DB, HOPSPLANE_PORT=str(port)))
        said = " ".join(r.stderr.split())
        assert r.returncode == 1, said
        assert f"port {port} is held by server processes left behind" in said
        assert f"parent pid {gone.pid}" in said and f"kill {orphan.pid}" in said
    finally:
        orphan.kill()
        orphan.wait()


def test_port_problem_names_the_holder_and_says_what_to_do(listening: int) -> None:
    said = processes.port_problem("127.0.0.1", listening)
    assert said is not None
    assert f"port {listening} is already in use by pid {os.getpid()}" in said
    assert "--port or HOPSPLANE_PORT" in said
    assert processes.port_problem("127.0.0.1", free_port()) is None
    unknown = processes.port_problem("no-such-host.invalid", free_port())
    assert unknown is not None and "HOPSPLANE_HOST" in unknown


def test_a_worker_marker_round_trips_and_garbage_is_no_marker() -> None:
    assert processes.parse_marker(processes.worker_marker(12, 8000, "::1")) == (12, 8000, "::1")
    assert processes.parse_marker("") is None
    assert processes.parse_marker("x 8000 h") is None
