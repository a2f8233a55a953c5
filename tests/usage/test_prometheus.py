"""The Prometheus client against a local server that speaks its HTTP API, and the
collector that turns a cluster's day into usage events."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.integrations.prometheus import HttpPrometheusClient, PrometheusError
from hopsplane.usage import attribution, rules, service
from tests.factories import day_row, make_cluster, make_user, units
from tests.usage.fake_prometheus import FakePrometheus, fake_prometheus

DAY = date(2026, 11, 20)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    with fake_prometheus() as fake:
        yield fake


def test_the_client_sends_the_query_and_reads_exact_decimals(prom: FakePrometheus) -> None:
    prom.values = {"alpha": "12345.678901234567890123", "beta": "0"}
    client = HttpPrometheusClient(prom.url)
    samples = client.query("up", datetime(2026, 11, 21, tzinfo=UTC))
    assert {s.labels["namespace"]: s.value for s in samples} == {
        "alpha": Decimal("12345.678901234567890123"), "beta": Decimal(0)}
    assert prom.queries == [{"query": "up", "time": "1795219200.000"}]


def test_the_client_reports_prometheus_errors(prom: FakePrometheus) -> None:
    client = HttpPrometheusClient(prom.url)
    prom.error = (400, "bad_data", 'parse error at char 5: unexpected "}"')
    with pytest.raises(PrometheusError, match=r"bad_data.*parse error"):
        client.query("up{", datetime(2026, 11, 21, tzinfo=UTC))
    prom.error = (503, "unavailable", "too many queries")
    with pytest.raises(PrometheusError, match="HTTP 503"):
        client.query("up", datetime(2026, 11, 21, tzinfo=UTC))
    prom.error, prom.raw_body = None, b"<html>proxy error</html>"
    with pytest.raises(PrometheusError, match="without a JSON body"):
        client.query("up", datetime(2026, 11, 21, tzinfo=UTC))
    prom.raw_body = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2.5]}]}}'
    with pytest.raises(PrometheusError, match="malformed"):
        client.query("up", datetime(2026, 11, 21, tzinfo=UTC))


def test_the_client_reports_an_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = HttpPrometheusClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(PrometheusError, match="unreachable"):
        client.query("up", datetime(2026, 11, 21, tzinfo=UTC))


def _setup(session: Session, prom: FakePrometheus) -> tuple[object, str, str]:
    cluster = make_cluster(session, {"prometheus_url": prom.url})
    alice = make_user(session, cluster=cluster, project_id=11, project_name="Alice_Lab")
    bob = make_user(session, cluster=cluster, project_id=12, project_name="bob")
    return cluster, alice, bob


def test_collecting_a_day_folds_cpu_seconds_per_namespace(
    session: Session, prom: FakePrometheus
) -> None:
    cluster, alice, bob = _setup(session, prom)
    prom.values = {"alice-lab": "3600", "bob": "1.5", "kube-system": "999"}
    result = service.collect_cluster_day(session, cluster, DAY, HttpPrometheusClient(prom.url))
    assert (result.namespaces, result.new, result.unmatched) == (2, 2, 0)
    assert result.ignored == ["kube-system"]
    assert prom.queries == [
        {"query": attribution.CPU_BY_POD_QUERY, "time": "1795219200.000"},
        {"query": attribution.POD_LABELS_QUERY, "time": "1795219200.000"}]
    assert units(session, alice) == Decimal(10000)
    assert units(session, bob) == Decimal("4.1667")
    row = day_row(session, alice)
    assert row is not None  # no pod names a user: the owner's, marked as unattributed
    assert row.raw_metrics["cpu_seconds_by_source"] == {f"prometheus:{cluster}:unattributed": 3600}
    assert row.user_breakdown == {alice: 10000}


def test_collecting_twice_changes_nothing_and_a_correction_replaces_the_day(
    session: Session, prom: FakePrometheus
) -> None:
    cluster, alice, bob = _setup(session, prom)
    client = HttpPrometheusClient(prom.url)
    prom.values = {"alice-lab": "360", "bob": "36"}
    service.collect_cluster_day(session, cluster, DAY, client)
    again = service.collect_cluster_day(session, cluster, DAY, client)
    assert (again.new, again.corrected, again.unchanged) == (0, 0, 2)
    assert units(session, alice) == Decimal(1000) and units(session, bob) == Decimal(100)

    prom.values = {"alice-lab": "720"}  # alice corrected upwards, bob gone
    fixed = service.collect_cluster_day(session, cluster, DAY, client)
    assert fixed.corrected == 2
    assert units(session, alice) == Decimal(2000) and units(session, bob) == Decimal(0)
    row = day_row(session, alice)
    assert row is not None and row.user_breakdown == {alice: 2000}
    assert row.raw_metrics["events_by_source"] == {f"prometheus:{cluster}:unattributed": 1}
    revision = session.execute(text(
        "SELECT revision FROM hopsplane.usage_events WHERE event_id = :i"),
        {"i": rules.collected_event_id(cluster, "alice-lab", DAY)}).scalar_one()  # type: ignore[arg-type]
    assert revision == 2

    prom.values = {}  # an empty answer never wipes a day
    service.collect_cluster_day(session, cluster, DAY, client)
    assert units(session, alice) == Decimal(2000)


def test_usage_added_by_other_sources_survives_a_correction(
    session: Session, prom: FakePrometheus
) -> None:
    cluster, alice, _bob = _setup(session, prom)
    client = HttpPrometheusClient(prom.url)
    prom.values = {"alice-lab": "360"}
    service.collect_cluster_day(session, cluster, DAY, client)
    service.ingest(session, [service.UsageEventIn(
        id="manual", account_id=alice, compute_units="5",
        timestamp=datetime(2026, 11, 20, 9, tzinfo=UTC))], service.Submitter(admin_id="a"))
    prom.values = {"alice-lab": "36"}
    service.collect_cluster_day(session, cluster, DAY, client)
    assert units(session, alice) == Decimal(105)


def test_unknown_namespaces_are_kept_and_fold_in_once_the_project_is_known(
    session: Session, prom: FakePrometheus
) -> None:
    cluster, _alice, _bob = _setup(session, prom)
    prom.values = {"carol-project": "7200"}
    result = service.collect_cluster_day(session, cluster, DAY, HttpPrometheusClient(prom.url))
    assert result.unmatched == 1
    [lost] = service.unmatched(session)
    assert lost.problem == f"unknown namespace carol-project on cluster {cluster}"
    carol = make_user(session, cluster=cluster, project_id=13, project_name="Carol_Project")
    assert service.refold(session).folded == 1
    assert units(session, carol) == Decimal(20000)


def test_collect_all_builds_clients_from_cluster_metadata(
    fresh_db: Database, prom: FakePrometheus
) -> None:
    with fresh_db.transaction() as s:
        cluster, alice, _bob = _setup(s, prom)
        no_prometheus = make_cluster(s)
    prom.values = {"alice-lab": "36"}
    results = {r.cluster_id: r for r in service.collect_all(fresh_db, DAY)}
    assert results[cluster].new == 2 - 1 and results[cluster].error is None  # type: ignore[index]
    assert results[no_prometheus].error == "no metadata.prometheus_url"
    with fresh_db.transaction() as s:
        assert units(s, alice) == Decimal(100)


def test_pods_are_attributed_to_their_hopsworks_users_and_the_rest_stays_with_the_owner(
    session: Session, prom: FakePrometheus
) -> None:
    cluster = make_cluster(session, {"prometheus_url": prom.url})
    owner = make_user(session, cluster=cluster, project_id=11, project_name="Lab_One")
    member = make_user(session, owner=owner)
    former = make_user(session, cluster=cluster, project_id=12, project_name="other")
    session.execute(text("UPDATE users SET hopsworks_username = CASE id WHEN :o THEN 'own10000' "
                         "WHEN :m THEN 'mem10001' ELSE 'for10002' END, metadata = metadata || "
                         "CASE id WHEN :o THEN '{\"hopsworks_namespace\": \"lab-one\"}'::jsonb "
                         "ELSE '{}'::jsonb END"),
                    {"o": owner, "m": member})
    ns = "lab-one"
    prom.series = [
        ({"namespace": ns, "pod": f"{ns}--mem10001-5d8f7b9c4-x2x9q"}, "7200"),  # Jupyter
        ({"namespace": ns, "pod": "etl-run-1-driver"}, "1800"),  # a job pod, labelled
        ({"namespace": ns, "pod": "etl-run-2-driver"}, "360"),  # a former member's job
        ({"namespace": ns, "pod": "mysterious-pod"}, "36"),  # nothing names a user
    ]
    prom.pod_labels = [
        {"namespace": ns, "pod": "etl-run-1-driver", "label_spark": f"{ns}--own10000"},
        {"namespace": ns, "pod": "etl-run-2-driver", "label_python": f"{ns}--for10002"},
    ]
    client = HttpPrometheusClient(prom.url)
    result = service.collect_cluster_day(session, cluster, DAY, client)
    assert (result.new, result.unmatched) == (3, 0)
    row = day_row(session, owner)
    assert row is not None
    assert row.user_breakdown == {member: 20000, owner: 5000 + 1000 + 100}
    assert row.raw_metrics["cpu_seconds_by_source"] == {
        f"prometheus:{cluster}": 9000, f"prometheus:{cluster}:unattributed": 396}
    assert units(session, former) == 0
    again = service.collect_cluster_day(session, cluster, DAY, client)
    assert (again.new, again.corrected, again.unchanged) == (0, 0, 3)
    prom.pod_labels = []  # the label is gone: the owner's job is unattributed now
    service.collect_cluster_day(session, cluster, DAY, client)
    row = day_row(session, owner)
    assert row is not None and row.user_breakdown == {member: 20000, owner: 6100}
    assert row.raw_metrics["cpu_seconds_by_source"] == {
        f"prometheus:{cluster}": 7200, f"prometheus:{cluster}:unattributed": 2196}


def test_username_of_reads_labels_then_jupyter_pod_names() -> None:
    assert attribution.username_of("p", "p--ann1-7c9d-abcde", None) == "ann1"
    assert attribution.username_of("p", "x", {"label_flink": "p--bob2"}) == "bob2"
    assert attribution.username_of("p", "x", {"label_flink": "q--bob2"}) is None
    assert attribution.username_of("p", "p--ann1", None) is None  # not a deployment's pod
    assert attribution.username_of("p", "pp--ann1-7c9d-abcde", None) is None
