"""The collector against a real Prometheus (Debian's prometheus 2.42): OpenMetrics samples
of a past UTC day turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics``, served by ``prometheus`` on a loopback port. The folded units must equal the
CPU core-seconds computed by hand below, times 10,000 / 3,600, per user.

Skipped with a message where the binaries are missing; `.ci/run` installs them and sets
HOPSPLANE_REQUIRE_PROMETHEUS=1, which turns the skip into a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.integrations.prometheus import HttpPrometheusClient
from hopsplane.usage import rules, service
from tests.factories import day_row, make_cluster, make_user
from tests.live_server import wait_until_ready

pytestmark = pytest.mark.slow  # a real Prometheus server


DAY = date(2026, 11, 20)
STEP = 60  # seconds between samples
READY_WAIT = 120  # seconds Prometheus may take to load the blocks (a wait, not an assertion)


def _binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return prometheus, promtool
    message = ("prometheus/promtool not installed (Debian: apt-get install -y prometheus; "
               ".ci/run installs it)")
    if os.environ.get("HOPSPLANE_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _seconds(hour: int) -> int:
    """Unix time of ``hour`` o'clock UTC on DAY (24: the next midnight)."""
    return int(rules.day_start(DAY).timestamp()) + hour * 3600


def _counter(labels: str, points: list[tuple[int, Decimal]]) -> list[str]:
    return [f"container_cpu_usage_seconds_total{{{labels}}} {v} {t}" for t, v in points]


def _linear(start: int, end: int, cores: Decimal, first: Decimal = Decimal(0)) -> list[
        tuple[int, Decimal]]:
    """A counter growing by ``cores`` core-seconds a second, sampled every STEP seconds."""
    return [(t, first + cores * (t - start)) for t in range(start, end + 1, STEP)]


@pytest.fixture
def prometheus_url(tmp_path: Path) -> Iterator[str]:
    prometheus, promtool = _binaries()
    day_start, day_end = _seconds(0), _seconds(24)
    jupyter = "lab-one--mem10001-5d8f7b9c4-x2x9q"
    lines: list[str] = []
    # a member's Jupyter server: 0.5 cores all day
    lines += _counter(f'namespace="lab-one",pod="{jupyter}",container="main",image="jupyter"',
                      _linear(day_start, day_end, Decimal("0.5")))
    # the owner's Spark job, labelled as Hopsworks labels job pods: from 06:00, 1 core; its
    # container restarts at 12:00 (the counter resets) and runs on at 0.25 cores
    first, second = _linear(_seconds(6), _seconds(12), Decimal(1)), _linear(
        _seconds(12), day_end, Decimal("0.25"))
    lines += _counter('namespace="lab-one",pod="etl-driver",container="spark",image="spark"',
                      first + second[1:])
    # a pod nothing attributes: 0.1 cores all day, its counter already at 100 at midnight
    lines += _counter('namespace="lab-one",pod="sidecar-x",container="c",image="i"',
                      _linear(day_start, day_end, Decimal("0.1"), Decimal(100)))
    # another account's owner, in Jupyter: 2 cores all day
    lines += _counter('namespace="other",pod="other--own20000-abc12-xyz34",container="main",'
                      'image="jupyter"', _linear(day_start, day_end, Decimal(2)))
    # kube-system is never billed
    lines += _counter('namespace="kube-system",pod="coredns",container="c",image="i"',
                      _linear(day_start, day_end, Decimal(3)))
    lines += [f'kube_pod_labels{{namespace="lab-one",pod="etl-driver",'
              f'label_spark="lab-one--own10000"}} 1 {t}'
              for t in range(_seconds(6), day_end + 1, STEP)]
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


def _units(cpu_seconds: Decimal) -> Decimal:
    return (cpu_seconds * 10_000 / 3_600).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def test_the_collector_against_a_real_prometheus_folds_each_users_cpu(
    session: Session, prometheus_url: str
) -> None:
    cluster = make_cluster(session, {"prometheus_url": prometheus_url})
    owner = make_user(session, cluster=cluster, project_id=11, project_name="Lab_One")
    member = make_user(session, owner=owner)
    other = make_user(session, cluster=cluster, project_id=12, project_name="other")
    session.execute(text(
        "UPDATE users SET hopsworks_username = CASE id WHEN :o THEN 'own10000' "
        "WHEN :m THEN 'mem10001' ELSE 'own20000' END WHERE id IN (:o, :m, :x)"),
        {"o": owner, "m": member, "x": other})

    result = service.collect_cluster_day(session, cluster, DAY,
                                         HttpPrometheusClient(prometheus_url))
    assert result.ignored == ["kube-system"] and result.unmatched == 0

    jupyter = Decimal("0.5") * 86_400  # 43,200 core-seconds
    job = Decimal(1) * 6 * 3_600 + Decimal("0.25") * 12 * 3_600  # 21,600 + 10,800
    sidecar = Decimal("0.1") * 86_400  # 8,640
    row = day_row(session, owner)
    assert row is not None
    assert row.user_breakdown == {member: float(_units(jupyter)),
                                  owner: float(_units(job) + _units(sidecar))}
    assert row.compute_units == _units(jupyter) + _units(job) + _units(sidecar)
    assert row.raw_metrics["cpu_seconds_by_source"] == {
        f"prometheus:{cluster}": float(jupyter + job),
        f"prometheus:{cluster}:unattributed": float(sidecar)}
    other_row = day_row(session, other)
    assert other_row is not None
    assert other_row.user_breakdown == {other: float(_units(Decimal(2) * 86_400))}
