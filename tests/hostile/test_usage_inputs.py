"""Hostile usage events, through POST /v1/usage/events with real agent tokens:
event ids are scoped to their source, no valid event can make a later one fail, bad
strings and integers are a 422, and a disabled cluster's agent is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.billing.run import run_billing
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.http.deps import Principal
from hopsplane.usage import repository, service
from hopsplane.usage.rules import MAX_DAY_UNITS, MAX_EVENT_CPU_SECONDS, MAX_EVENT_UNITS
from hopsplane.usage.service import Submitter
from tests.factories import RecordingHooks, event, make_cluster, make_user

ADMIN = Principal("admin", "a@x.io", account_owner_id=None, is_platform_admin=True)
DAY = "2026-11-15"


@pytest.fixture
def client(fresh_db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, database=fresh_db)
    app.state.authenticator = lambda _r, _s: ADMIN
    with TestClient(app) as c:
        yield c


def _post(client: TestClient, token: str | None, *events: dict[str, object]) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.post("/v1/usage/events", json={"events": list(events)}, headers=headers)
    return r.status_code, r.json()


def _ev(event_id: str, account: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {"id": event_id, "account_id": account,
                               "timestamp": f"{DAY}T10:00:00Z"}
    if "cpu_seconds" not in fields:
        body["compute_units"] = "1"
    return {**body, **fields}


def _day_units(db: Database, account: str) -> Decimal:
    with db.transaction() as s:
        value = s.execute(text("SELECT compute_units FROM usage_tracking WHERE "
                               "account_owner_id = :a AND date = :d"),
                          {"a": account, "d": DAY}).scalar_one_or_none()
    return Decimal(0) if value is None else Decimal(value)


def _agents(db: Database) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two clusters, an account on each, and each cluster's agent token."""
    with db.transaction() as s:
        x, y = make_cluster(s), make_cluster(s)
        a, b = make_user(s, cluster=x), make_user(s, cluster=y)
        return (a, service.issue_token(s, x)), (b, service.issue_token(s, y))


def test_two_agents_with_the_same_id_scheme_both_bill_their_accounts(
    client: TestClient, fresh_db: Database
) -> None:
    (a, agent_x), (b, agent_y) = _agents(fresh_db)
    same = "job-42:2026-11-15"
    assert _post(client, agent_x, _ev(same, a, compute_units="75000"))[1]["accepted"] == 1
    status, body = _post(client, agent_y, _ev(same, b, compute_units="22500"))
    assert status == 200 and body["accepted"] == 1 and body["duplicates"] == 0, body
    # the admin API is a source of its own too
    assert _post(client, None, _ev(same, b, compute_units="10000"))[1]["accepted"] == 1
    # a repeat from the same source is still a duplicate
    for token, account in ((agent_x, a), (agent_y, b), (None, b)):
        again = _post(client, token, _ev(same, account, compute_units="1000"))[1]
        assert again["accepted"] == 0 and again["duplicates"] == 1
    assert _day_units(fresh_db, a) == Decimal(75000)
    assert _day_units(fresh_db, b) == Decimal(32500)
    # and both are billed exactly, at the default 0.0001 per unit
    report = run_billing(fresh_db, date(2026, 11, 15), hooks=RecordingHooks())
    assert report.ok and report.amount == Decimal("10.75"), report
    with fresh_db.transaction() as s:
        assert [e.amount for e in credits.history(s, a) if e.type == "usage"] == [Decimal("-7.50")]
        assert [e.amount for e in credits.history(s, b) if e.type == "usage"] == [Decimal("-3.25")]


def test_one_group_commit_keeps_the_same_id_of_two_sources_apart(fresh_db: Database) -> None:
    (a, _), (b, _) = _agents(fresh_db)
    with fresh_db.transaction() as s:
        clusters = dict(s.execute(text("SELECT account_owner_id, hopsworks_cluster_id "
                                       "FROM account_clusters")).all())
    when = datetime.fromisoformat(f"{DAY}T10:00:00+00:00")
    ev_a = event("job-1", account_id=a, compute_units="4", timestamp=when)
    ev_b = event("job-1", account_id=b, compute_units="5", timestamp=when)
    rows_a = service.validated_batch([ev_a], Submitter(cluster_id=clusters[a]))
    rows_b = service.validated_batch([ev_b], Submitter(cluster_id=clusters[b]))
    with fresh_db.transaction() as s:  # as the combiner stores concurrent batches
        assert repository.ingest_batches(s, [rows_a, rows_b]) == [(1, 0, 1), (1, 0, 1)]
    assert _day_units(fresh_db, a) == Decimal(4)
    assert _day_units(fresh_db, b) == Decimal(5)


def test_the_largest_event_cannot_block_its_day(client: TestClient, fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    old_limit = "99999999999999.9999"
    status, body = _post(client, None, _ev("huge", owner, compute_units=old_limit))
    assert status == 422 and "out of range" in body["detail"], body
    biggest = _ev("big", owner, compute_units=f"{MAX_EVENT_UNITS}")
    assert _post(client, None, biggest)[0] == 200
    assert _post(client, None, _ev("later", owner, compute_units="0.0001"))[0] == 200
    assert _day_units(fresh_db, owner) == MAX_EVENT_UNITS + Decimal("0.0001")


def test_a_full_day_refuses_with_422_and_changes_nothing(
    client: TestClient, fresh_db: Database
) -> None:
    """A day that already holds 999,998 of the largest events (set directly: posting them
    would take a while) still takes the 999,999th; past MAX_DAY_UNITS it answers 422."""
    with fresh_db.transaction() as s:
        owner = make_user(s)
    assert _post(client, None, _ev("first", owner))[0] == 200
    full = MAX_EVENT_UNITS * 999_998
    with fresh_db.transaction() as s:
        s.execute(text("UPDATE usage_tracking SET compute_units = :u, "
                       "user_breakdown = jsonb_build_object(CAST(:a AS text), :u) "
                       "WHERE account_owner_id = :a"), {"u": full, "a": owner})
    assert _post(client, None, _ev("fits", owner, compute_units=f"{MAX_EVENT_UNITS}"))[0] == 200
    status, body = _post(client, None, _ev("too-much", owner,
                                           compute_units=f"{MAX_EVENT_UNITS}"))
    assert status == 422 and "what a day holds" in body["detail"], body
    assert _day_units(fresh_db, owner) == full + MAX_EVENT_UNITS
    assert full + 2 * MAX_EVENT_UNITS > MAX_DAY_UNITS
    with fresh_db.transaction() as s:
        stored = s.execute(text("SELECT count(*) FROM hopsplane.usage_events WHERE "
                                "event_id = 'too-much'")).scalar_one()
    assert stored == 0


@pytest.mark.parametrize(("field", "value"), [
    ("id", "job\x00-1"), ("account_id", "auth0|x\x00"), ("user_id", "\x00"),
    ("id", "x" * 256), ("project_id", 2**31), ("project_id", 0), ("project_id", -1),
    ("cpu_seconds", "36000000000000"), ("cpu_seconds", f"{MAX_EVENT_CPU_SECONDS + 1}"),
    ("compute_units", "1e999999999"), ("compute_units", "NaN"), ("compute_units", "9" * 65),
    ("compute_units", str(MAX_EVENT_UNITS + Decimal("0.0001"))),
])
def test_bad_usage_inputs_are_422_and_store_nothing(
    client: TestClient, fresh_db: Database, field: str, value: object
) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    body = _ev("ok", owner)
    if field in ("cpu_seconds",):
        body.pop("compute_units")
    if field == "project_id":
        body.pop("account_id")
    body[field] = value
    status, answer = _post(client, None, body)
    assert status == 422 and answer["error"] == "Invalid", (field, value, answer)
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one() == 0


def test_the_largest_cpu_seconds_are_accepted(client: TestClient, fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    body = _ev("cpu", owner, cpu_seconds=f"{MAX_EVENT_CPU_SECONDS}")
    assert _post(client, None, body)[0] == 200
    assert _day_units(fresh_db, owner) == MAX_EVENT_UNITS


def test_a_disabled_clusters_agent_is_refused_until_it_is_active_again(
    client: TestClient, fresh_db: Database
) -> None:
    (a, agent), _ = _agents(fresh_db)
    with fresh_db.transaction() as s:
        cluster = s.execute(text("SELECT hopsworks_cluster_id FROM account_clusters WHERE "
                                 "account_owner_id = :a"), {"a": a}).scalar_one()
    assert client.post(f"/v1/admin/clusters/{cluster}/disable").status_code == 200
    status, body = _post(client, agent, _ev("e1", a))
    assert status == 403 and body["error"] == "Forbidden" and "disabled" in body["detail"]
    assert _day_units(fresh_db, a) == 0
    assert client.post(f"/v1/admin/clusters/{cluster}/activate").status_code == 200
    assert _post(client, agent, _ev("e1", a)) == (200, {
        "received": 1, "accepted": 1, "duplicates": 0, "unmatched": 0, "days_updated": 1})
    assert _day_units(fresh_db, a) == 1


@pytest.mark.parametrize("timestamp", [
    "0001-01-01T00:00:00Z",  # an agent may not report year 0001: a backlog of 740,000 days
    "2000-02-29T12:00:00Z",
    "OLDEST-1",  # one day older than the setting allows
    "9999-12-31T23:59:59-01:00",  # its offset takes UTC past the last datetime
    "0001-01-01T00:30:00+01:00",  # ... or before the first
])
def test_usage_too_old_or_out_of_range_is_422_and_stores_nothing(
    client: TestClient, fresh_db: Database, timestamp: str
) -> None:
    oldest = datetime.now(UTC).date() - timedelta(days=400)
    if timestamp == "OLDEST-1":
        timestamp = f"{oldest - timedelta(days=1)}T23:59:59Z"
    with fresh_db.transaction() as s:
        owner = make_user(s)
    status, answer = _post(client, None, _ev("old", owner, timestamp=timestamp))
    assert status == 422 and answer["error"] == "Invalid", (timestamp, answer)
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one() == 0
    status, answer = _post(client, None, _ev("oldest", owner, timestamp=f"{oldest}T00:00:00Z"))
    assert status == 200 and answer["accepted"] == 1, answer


def test_the_usage_age_limit_is_a_setting_and_binds_the_collector(
    fresh_db: Database, settings: Settings
) -> None:
    tight = Settings(**{**settings.model_dump(), "usage_max_age_days": 10,  # type: ignore[arg-type]
                        "_env_file": None})
    app = create_app(tight, database=fresh_db)
    app.state.authenticator = lambda _r, _s: ADMIN
    eleven = datetime.now(UTC).date() - timedelta(days=11)
    with fresh_db.transaction() as s:
        owner = make_user(s)
    with TestClient(app) as c:
        status, answer = _post(c, None, _ev("e", owner, timestamp=f"{eleven}T12:00:00Z"))
    assert status == 422 and "older than 10 days" in answer["detail"]
    with fresh_db.transaction() as s, pytest.raises(Invalid, match="older than 400 days"):
        service.collect_cluster_day(s, make_cluster(s), date(2001, 1, 1), None)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [
    "9999-12-31T23:59:59-01:00", "9999-12-31T23:00:00-23:59", "0001-01-01T00:00:00+01:00",
])
def test_timestamps_whose_offset_leaves_the_calendar_in_utc_are_422(
    client: TestClient, fresh_db: Database, timestamp: str
) -> None:
    with fresh_db.transaction() as s:
        account = make_user(s)
    status, body = _post(client, None, _ev("edge-1", account, timestamp=timestamp))
    assert status == 422 and body["error"] == "Invalid", body
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one() == 0


@pytest.mark.parametrize("timestamp", ["9999-12-31T12:00:00Z", "0001-01-01T00:00:00Z"])
def test_the_first_and_last_days_of_the_calendar_are_never_a_500(
    client: TestClient, fresh_db: Database, timestamp: str
) -> None:
    with fresh_db.transaction() as s:
        account = make_user(s)
    status, body = _post(client, None, _ev("edge-2", account, timestamp=timestamp))
    assert status == 200 or 400 <= status < 500, body
