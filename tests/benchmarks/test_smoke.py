"""Every benchmark runs: each script in benchmarks/ has a ``--smoke`` mode
(seconds, tiny data) that runs end to end against the test server here, so a change that
breaks a benchmark fails the slow tier instead of the next person who measures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))
# the option naming the server's admin URL (each script creates its own scratch database)
URL_OPTION = {"api_load": "--server", "usage_ingest": "--server", "slow_clients": "--server",
              "legacy_migration": "--admin-url", "stripe_webhooks": None}


def test_every_benchmark_is_smoked() -> None:
    assert BENCHMARKS, "no benchmarks found"
    for name in BENCHMARKS:
        assert "--smoke" in (ROOT / "benchmarks" / f"{name}.py").read_text(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_benchmark_runs_in_its_smoke_mode(name: str, pg: PgServer) -> None:
    admin = pg.admin_url.replace("postgresql+psycopg://", "postgresql://")
    option = URL_OPTION.get(name, "--url")
    server = [option, admin] if option else []  # stripe_webhooks reads it from the env
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke", *server],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
             "HOPSPLANE_BENCH_DATABASE_URL": admin},
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
