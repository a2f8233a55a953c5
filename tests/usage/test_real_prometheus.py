"""The collector against a real Prometheus (Debian's prometheus 2.42): OpenMetrics samples
of a past UTC day turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics``, served by ``prometheus`` on a loopback port. The folded units must equal the
CPU core-seconds computed by hand below, times 10,000 / 3,600, per user.

Skipped with a message where the binaries are missing; `.ci/run` installs them and sets
HOPSPLANE_REQUIRE_PROMETHEUS=1, which turns the skip into a failure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.integrations.prometheus import HttpPrometheusClient
from hopsplane.usage import rules, service
from tests.factories import day_row, make_cluster, make_user
from tests.usage.real_prometheus import counter, linear, serve

pytestmark = pytest.mark.slow  # a real Prometheus server


DAY = date(2026, 11, 20)
STEP = 60  # seconds between samples


def _seconds(hour: int) -> int:
    """Unix time of ``hour`` o'clock UTC on DAY (24: the next midnight)."""
    return int(rules.day_start(DAY).timestamp()) + hour * 3600


def _counter(labels: str, points: list[tuple[int, Decimal]]) -> list[str]:
    return counter(labels, points)


def _linear(start: int, end: int, cores: Decimal, first: Decimal = Decimal(0)) -> list[
        tuple[int, Decimal]]:
    """A counter growing by ``cores`` core-seconds a second, sampled every STEP seconds."""
    return linear(start, end, cores, STEP, first)


@pytest.fixture
def prometheus_url(tmp_path: Path) -> Iterator[str]:
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
    # another Jupyter server of that owner, from 08:00 to 10:00 at 1 core: gone by noon
    lines += _counter('namespace="other",pod="other--own20000-old12-end34",container="main",'
                      'image="jupyter"', _linear(_seconds(8), _seconds(10), Decimal(1)))
    # kube-system is never billed
    lines += _counter('namespace="kube-system",pod="coredns",container="c",image="i"',
                      _linear(day_start, day_end, Decimal(3)))
    lines += [f'kube_pod_labels{{namespace="lab-one",pod="etl-driver",'
              f'label_spark="lab-one--own10000"}} 1 {t}'
              for t in range(_seconds(6), day_end + 1, STEP)]
    with serve(tmp_path, lines) as url:
        yield url


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
    assert other_row.user_breakdown == {other: float(_units(Decimal(2) * 86_400 + ENDED))}


ENDED = Decimal(7_200 + STEP // 2)
"""What ``increase`` counts for the pod that ran 08:00-10:00 at 1 core: its 7,200
core-seconds, plus half a sample interval extrapolated past its last sample (Prometheus
extrapolates a series that ends inside the window by half its average interval; it starts
at 0, so nothing is extrapolated before its first sample)."""


@pytest.mark.slow
def test_today_so_far_counts_resets_and_ended_pods_as_increase_does_and_the_day_then_replaces_it(
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
    client = HttpPrometheusClient(prometheus_url)
    at_three = rules.day_start(DAY) + timedelta(hours=15)

    # 15:00 on the day: the job's container restarted at 12:00 (its counter went back to
    # 0) and the pod of 08:00-10:00 is gone; both are counted
    so_far = service.collect_cluster_day(session, cluster, DAY, client, now=at_three)
    assert so_far.through == at_three and sorted(so_far.accounts) == sorted([owner, other])
    jupyter = Decimal("0.5") * 15 * 3_600
    job = Decimal(1) * 6 * 3_600 + Decimal("0.25") * 3 * 3_600
    sidecar = Decimal("0.1") * 15 * 3_600
    row = day_row(session, owner)
    assert row is not None and row.user_breakdown == {
        member: float(_units(jupyter)), owner: float(_units(job) + _units(sidecar))}
    other_row = day_row(session, other)
    assert other_row is not None
    assert other_row.user_breakdown == {other: float(_units(Decimal(2) * 15 * 3_600 + ENDED))}

    # the day, whole, replaces what was collected so far (one event per user, revised)
    whole = service.collect_cluster_day(session, cluster, DAY, client,
                                        now=rules.day_end(DAY) + timedelta(minutes=1))
    assert (whole.new, whole.corrected) == (0, 4)
    session.expire_all()
    row = day_row(session, owner)
    assert row is not None and row.user_breakdown == {
        member: float(_units(Decimal("0.5") * 86_400)),
        owner: float(_units(Decimal(21_600 + 10_800)) + _units(Decimal("0.1") * 86_400))}
    revisions = session.execute(text(
        "SELECT event_id, revision FROM hopsplane.usage_events WHERE day = :d ORDER BY 1"),
        {"d": DAY}).all()
    assert len(revisions) == 4 and {r for _e, r in revisions} == {2}
