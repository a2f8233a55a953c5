"""The embedded PostgreSQL after a crash: a process killed with kill -9 leaves
its handle behind; the next process must still start the server and stop it at exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HOLD = """
import sys, time
from pathlib import Path
from hopsplane.db.embedded import start_embedded
print(start_embedded(Path(sys.argv[1])), flush=True)
time.sleep(600)
"""

ONCE = """
import sys
from pathlib import Path
import psycopg
from hopsplane.db.embedded import start_embedded
with psycopg.connect(start_embedded(Path(sys.argv[1]))) as conn:
    print(conn.execute("SELECT 1").fetchone()[0], flush=True)
"""


def _postmaster_pid(pgdata: Path) -> int | None:
    f = pgdata / "postmaster.pid"
    return int(f.read_text().splitlines()[0]) if f.exists() else None


def _running(pid: int | None) -> bool:
    import psutil

    if pid is None:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@pytest.fixture
def pgdata() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hopsplane-embedded-"))
    yield root / "pgdata"
    pid = _postmaster_pid(root / "pgdata")
    if _running(pid):  # the test failed: leave nothing running behind it
        import psutil

        psutil.Process(pid).kill()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow  # processes killed with SIGKILL, servers started twice
def test_a_killed_holder_leaves_a_server_the_next_process_starts_and_stops(
    pgdata: Path,
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(pgdata)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().startswith("postgresql://")
    server = _postmaster_pid(pgdata)
    assert _running(server)
    holder.kill()  # kill -9: no atexit, the handle stays in .handle_pids.json
    holder.wait()
    assert holder.pid in json.loads((pgdata / ".handle_pids.json").read_text())
    assert _running(server)

    once = subprocess.run([sys.executable, "-c", ONCE, str(pgdata)],
                          capture_output=True, text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    assert once.stdout.strip() == "1"
    assert not _running(server), "the next process's exit did not stop the server"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []

    again = subprocess.run([sys.executable, "-c", ONCE, str(pgdata)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "1", again.stderr
    assert not _running(_postmaster_pid(pgdata))


@pytest.mark.slow  # processes killed with SIGKILL, servers started twice
def test_a_killed_server_leaves_a_postmaster_pid_the_next_start_recovers_from(
    pgdata: Path,
) -> None:
    import psutil

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(pgdata)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    holder.stdout.readline()
    server = _postmaster_pid(pgdata)
    assert server is not None
    psutil.Process(server).kill()  # kill -9 the postgres itself, then its holder
    holder.kill()
    holder.wait()
    assert (pgdata / "postmaster.pid").exists()

    once = subprocess.run([sys.executable, "-c", ONCE, str(pgdata)],
                          capture_output=True, text=True, timeout=120)
    assert once.returncode == 0 and once.stdout.strip() == "1", once.stderr
    assert not _running(_postmaster_pid(pgdata))
