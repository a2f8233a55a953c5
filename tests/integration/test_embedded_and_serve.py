"""The zero-configuration path: no HOPSPLANE_DATABASE_URL means an embedded PostgreSQL."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from hopsplane.config import Settings
from hopsplane.db.engine import resolve_database_url


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder of this test's own, outside pytest's shared base folder: the embedded server
    runs as another system user and changes the permissions of the folders above its data,
    which other pytest runs on the same machine may be cleaning up at the same moment.
    Removed afterwards, its server stopped first (nothing of a run is left under /tmp)."""
    import shutil
    import tempfile

    from hopsplane.db.embedded import stop_embedded

    folder = Path(tempfile.mkdtemp(prefix="hopsplane-embedded-"))
    yield folder
    stop_embedded(folder / "pgdata")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # starts and stops an embedded server twice
def test_embedded_server_keeps_its_data_between_runs(tmp_path: Path) -> None:
    settings = Settings(database_url=None, data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    url = resolve_database_url(settings).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    again = resolve_database_url(settings).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(again) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == (42,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # a served process
def test_serve_starts_on_the_embedded_default_and_stops_it_on_exit(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOPSPLANE_")}
    env |= {"HOPSPLANE_DATA_DIR": str(tmp_path), "HOPSPLANE_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hopsplane", "serve"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, proc.stdout and proc.stdout.read()
        assert (tmp_path / "pgdata" / "postmaster.pid").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "embedded server left running"
