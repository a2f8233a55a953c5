"""The Patroni cluster of the failover tier: installed when missing (etcd-server and
haproxy from Debian, Patroni from PyPI into its own venv), started per test, stopped also
when the test fails. Without root or a PostgreSQL server package the tests skip, unless
HOPSPLANE_REQUIRE_FAILOVER=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.failover.cluster import Cluster, ensure_tools


def _cluster(request: pytest.FixtureRequest, tmp_path: Path,
             synchronous: bool) -> Iterator[Cluster]:
    if "failover" not in (request.config.getoption("markexpr") or ""):
        # its own tier: two minutes of a whole machine's CPU, run by its own command
        pytest.skip("the failover tier runs with `pytest -m failover tests/failover`")
    missing = ensure_tools()
    if missing:
        if os.environ.get("HOPSPLANE_REQUIRE_FAILOVER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    cluster = Cluster(logs, synchronous=synchronous)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def patroni(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes in synchronous mode: a commit is acknowledged once a standby has it."""
    yield from _cluster(request, tmp_path, synchronous=True)


@pytest.fixture
def patroni_async(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes with asynchronous replication (what losing acknowledged writes costs)."""
    yield from _cluster(request, tmp_path, synchronous=False)
