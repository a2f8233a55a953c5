"""A real Prometheus (Debian's prometheus and promtool) serving samples a test writes:
OpenMetrics text turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics``, served on a loopback port. Samples may have any timestamps, the current
time and the next hours included (a block is data like any other to the query engine).

Skipped with a message where the binaries are missing; `.ci/run` installs them and sets
HOPSPLANE_REQUIRE_PROMETHEUS=1, which turns the skip into a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from tests.live_server import wait_until_ready

READY_WAIT = 120  # seconds Prometheus may take to load the blocks (a wait, not an assertion)


def binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return prometheus, promtool
    message = ("prometheus/promtool not installed (Debian: apt-get install -y prometheus; "
               ".ci/run installs it)")
    if os.environ.get("HOPSPLANE_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def counter(labels: str, points: list[tuple[int, Decimal]]) -> list[str]:
    return [f"container_cpu_usage_seconds_total{{{labels}}} {v} {t}" for t, v in points]


def linear(start: int, end: int, cores: Decimal, step: int,
           first: Decimal = Decimal(0)) -> list[tuple[int, Decimal]]:
    """A counter growing by ``cores`` core-seconds a second, sampled every ``step`` s."""
    return [(t, first + cores * (t - start)) for t in range(start, end + 1, step)]


@contextmanager
def serve(tmp_path: Path, lines: list[str]) -> Iterator[str]:
    """Prometheus serving ``lines`` (OpenMetrics samples); yields its base URL."""
    prometheus, promtool = binaries()
    source = tmp_path / "samples.om"
    source.write_text("\n".join(lines) + "\n# EOF\n")
    data = tmp_path / "data"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source),
                    str(data)], check=True, capture_output=True)
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=36500d"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(f"{url}/-/ready", READY_WAIT, process, "prometheus")
        except AssertionError as exc:
            pytest.fail(f"{exc}: " + (tmp_path / "prometheus.log").read_text()[-2000:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
