"""Usage events in, usage_tracking out: attribution, duplicates, unmatched, validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.errors import Forbidden, Invalid
from hopsplane.usage import service
from hopsplane.usage.service import Submitter
from tests.factories import day_row, event, make_cluster, make_user, units

ADMIN = Submitter(admin_id="admin")


def test_an_owners_events_are_summed_per_day_with_the_owner_in_the_breakdown(
    session: Session,
) -> None:
    owner = make_user(session)
    result = service.ingest(
        session, [event(account_id=owner, compute_units="2.5"),
                  event(account_id=owner, compute_units=3)], ADMIN
    )
    assert (result.accepted, result.duplicates, result.unmatched) == (2, 0, 0)
    row = day_row(session, owner)
    assert row is not None
    assert row.compute_units == Decimal("5.5")
    assert row.user_breakdown == {owner: 5.5}
    assert row.total_cost == Decimal("0.00")
    assert row.raw_metrics["units_by_source"] == {"api": 5.5}
    assert row.raw_metrics["events_by_source"] == {"api": 2}


def test_a_members_usage_goes_to_the_owner_with_the_member_in_the_breakdown(
    session: Session,
) -> None:
    owner = make_user(session)
    member = make_user(session, owner=owner)
    service.ingest(session, [
        event(account_id=member, compute_units="4"),
        event(account_id=owner, user_id=member, compute_units="1"),
        event(account_id=owner, compute_units="0.0001"),
    ], ADMIN)
    row = day_row(session, owner)
    assert row is not None and row.compute_units == Decimal("5.0001")
    assert {k: Decimal(str(v)) for k, v in row.user_breakdown.items()} == {
        member: Decimal(5), owner: Decimal("0.0001")}
    assert day_row(session, member) is None


def test_cpu_seconds_become_units_at_10000_per_cpu_hour(session: Session) -> None:
    owner = make_user(session)
    service.ingest(session, [event(account_id=owner, cpu_seconds="3600"),
                             event(account_id=owner, cpu_seconds=1)], ADMIN)
    row = day_row(session, owner)
    assert row is not None
    assert row.compute_units == Decimal("10002.7778")  # 1 s = 2.77777... rounded half-up
    assert Decimal(str(row.raw_metrics["cpu_seconds_by_source"]["api"])) == Decimal(3601)
    assert row.total_cost == Decimal("1.00")


def test_a_repeated_event_id_is_accepted_and_ignored(session: Session) -> None:
    owner = make_user(session)
    first = service.ingest(session, [event("e1", account_id=owner, compute_units="7"),
                                     event("e1", account_id=owner, compute_units="7")], ADMIN)
    again = service.ingest(session, [event("e1", account_id=owner, compute_units="7"),
                                     event("e2", account_id=owner, compute_units="1")], ADMIN)
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (1, 1)
    assert units(session, owner) == Decimal(8)


def test_days_are_utc_days(session: Session) -> None:
    owner = make_user(session)
    plus_two = timezone(timedelta(hours=2))
    service.ingest(session, [
        event(account_id=owner, timestamp=datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)),
        event(account_id=owner, timestamp=datetime(2026, 11, 21, 0, 0, tzinfo=UTC)),
        # 01:30 at +02:00 is 23:30 UTC the day before
        event(account_id=owner, timestamp=datetime(2026, 11, 21, 1, 30, tzinfo=plus_two)),
    ], ADMIN)
    assert units(session, owner, "2026-11-20") == 2
    assert units(session, owner, "2026-11-21") == 1


def test_unknown_accounts_are_kept_reported_and_folded_in_later(session: Session) -> None:
    result = service.ingest(session, [event("lost", account_id="auth0|later",
                                            compute_units="9")], ADMIN)
    assert (result.accepted, result.unmatched) == (1, 1)
    listed = service.unmatched(session)
    assert [(e.event_id, e.problem) for e in listed] == [("lost", "unknown account auth0|later")]
    assert service.refold(session).folded == 0

    session.execute(text("INSERT INTO users (id, email) VALUES ('auth0|later', 'l@x.io')"))
    refolded = service.refold(session)
    assert (refolded.folded, refolded.still_unmatched) == (1, 0)
    assert units(session, "auth0|later") == Decimal(9)
    assert service.refold(session).folded == 0  # never twice
    assert units(session, "auth0|later") == Decimal(9)


def test_projects_resolve_to_their_account(session: Session) -> None:
    project = 900_000 + uuid.uuid4().int % 99_999
    owner = make_user(session, project_id=project)
    member = make_user(session, owner=owner, project_id=project)
    result = service.ingest(session, [
        event(project_id=project, compute_units="2"),
        event(project_id=project, user_id=member, compute_units="3"),
        event(project_id=project, user_id="auth0|stranger", compute_units="5"),
        event(project_id=project + 1, compute_units="5"),
    ], ADMIN)
    assert result.unmatched == 2
    row = day_row(session, owner)
    assert row is not None and row.compute_units == Decimal(5)
    assert row.user_breakdown == {owner: 2, member: 3}
    problems = sorted(e.problem or "" for e in service.unmatched(session))
    assert problems == [f"unknown project {project + 1}",
                        f"user auth0|stranger is not in account {owner}"]


def test_a_project_claimed_by_two_accounts_is_not_guessed(session: Session) -> None:
    project = 800_000 + uuid.uuid4().int % 99_999
    make_user(session, project_id=project)
    make_user(session, project_id=project)
    result = service.ingest(session, [event(project_id=project)], ADMIN)
    assert result.unmatched == 1
    assert service.unmatched(session)[0].problem == f"project {project} belongs to 2 accounts"


def test_existing_usage_of_the_day_is_added_to(session: Session) -> None:
    owner = make_user(session)
    session.execute(text(
        "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown, "
        "raw_metrics) VALUES (:o, '2026-11-20', 100, jsonb_build_object(CAST(:o AS text), 100), "
        "'{\"legacy\": true}')"), {"o": owner})
    service.ingest(session, [event(account_id=owner, compute_units="0.5")], ADMIN)
    row = day_row(session, owner)
    assert row is not None and row.compute_units == Decimal("100.5")
    assert row.user_breakdown == {owner: 100.5}
    assert row.raw_metrics["legacy"] is True
    assert row.raw_metrics["units_by_source"] == {"api": 0.5}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"compute_units": 1.5}, "decimal string"),
        ({"compute_units": "1", "cpu_seconds": "1"}, "exactly one of compute_units"),
        ({"compute_units": "-1"}, ">= 0"),
        ({"compute_units": "0.00001"}, "more than 4 decimals"),
        ({"compute_units": "NaN"}, "finite"),
        ({"timestamp": datetime(2026, 11, 20, 12)}, "no time zone"),
        ({"account_id": None}, "exactly one of account_id and project_id"),
        ({"project_id": 5}, "exactly one of account_id and project_id"),
    ],
)
def test_one_invalid_event_refuses_the_batch(
    session: Session, fields: dict[str, object], message: str
) -> None:
    owner = make_user(session)
    good = event(account_id=owner)
    bad = _bad_event(owner, fields)
    with pytest.raises(Invalid, match=message) as info:
        service.ingest(session, [good, bad], ADMIN)
    assert "events[1]" in info.value.message
    assert units(session, owner) == 0
    assert session.execute(text(
        "SELECT count(*) FROM hopsplane.usage_events WHERE event_id = :i"), {"i": good.id}
    ).scalar_one() == 0


def _bad_event(owner: str, fields: dict[str, object]):  # type: ignore[no-untyped-def]
    from hopsplane.usage.schemas import UsageEventIn

    data: dict[str, object] = {
        "id": uuid.uuid4().hex, "account_id": owner, "compute_units": "1",
        "timestamp": datetime(2026, 11, 20, 12, tzinfo=UTC),
    }
    data.update(fields)
    if data.get("compute_units") is None:
        data.pop("compute_units")
    return UsageEventIn.model_construct(**data)  # skip pydantic: the service must refuse


def test_reserved_ids_are_refused(session: Session) -> None:
    owner = make_user(session)
    with pytest.raises(Invalid, match="reserved"):
        service.ingest(session, [event("prom:x:y:2026-11-20", account_id=owner)], ADMIN)


def test_a_cluster_agent_reports_only_for_its_own_cluster(session: Session) -> None:
    cluster, other = make_cluster(session), make_cluster(session)
    here = make_user(session, cluster=cluster)
    there = make_user(session, cluster=other)
    agent = Submitter(cluster_id=cluster)
    result = service.ingest(session, [event(account_id=here, compute_units="1"),
                                      event("x", account_id=there, compute_units="1")], agent)
    assert (result.accepted, result.unmatched) == (2, 1)
    assert units(session, here) == 1 and units(session, there) == 0
    [lost] = service.unmatched(session)
    assert lost.problem == f"unknown account {there} on cluster {cluster}"
    assert lost.cluster_id == cluster and lost.source == f"agent:{cluster}"
    row = day_row(session, here)
    assert row is not None and row.raw_metrics["units_by_source"] == {f"agent:{cluster}": 1}
    with pytest.raises(Forbidden, match="its own cluster"):
        service.ingest(session, [event(account_id=here, cluster_id=other)], agent)


def test_several_users_and_sources_on_one_day_are_added_entry_by_entry(session: Session) -> None:
    # A day row that already has usage (another source, extra keys) gets a batch naming the
    # owner, two members and a user at 0 units: every breakdown entry and every per-source
    # sum is added to, nothing else in the row changes, and a zero adds no key.
    owner = make_user(session)
    first, second = make_user(session, owner=owner), make_user(session, owner=owner)
    session.execute(text(
        "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown, "
        "raw_metrics) VALUES (:o, '2026-11-20', 10, jsonb_build_object(CAST(:f AS text), 10), "
        "'{\"legacy\": true, \"units_by_source\": {\"legacy\": 10}}')"), {"o": owner, "f": first})
    result = service.ingest(session, [
        event(account_id=owner, compute_units="1.25"),
        event(account_id=first, compute_units="2"),
        event(account_id=second, cpu_seconds="36"),  # 100 units
        event(account_id=owner, user_id=second, compute_units="0.0001"),
        event(account_id=first, compute_units="0"),
    ], ADMIN)
    assert (result.accepted, result.days_updated) == (5, 1)
    row = day_row(session, owner)
    assert row is not None
    assert row.compute_units == Decimal("113.2501")
    assert {k: Decimal(str(v)) for k, v in row.user_breakdown.items()} == {
        owner: Decimal("1.25"), first: Decimal("12"), second: Decimal("100.0001")}
    assert row.raw_metrics["legacy"] is True
    assert {k: Decimal(str(v)) for k, v in row.raw_metrics["units_by_source"].items()} == {
        "legacy": Decimal(10), "api": Decimal("103.2501")}
    assert row.raw_metrics["events_by_source"] == {"api": 5}
    assert row.raw_metrics["cpu_seconds_by_source"] == {"api": 36}


def test_a_zero_event_on_a_new_day_leaves_an_empty_breakdown(session: Session) -> None:
    owner = make_user(session)
    service.ingest(session, [event(account_id=owner, compute_units="0")], ADMIN)
    row = day_row(session, owner)
    assert row is not None and row.compute_units == 0 and row.user_breakdown == {}
    assert row.raw_metrics["events_by_source"] == {"api": 1}
