"""Prepaid means prepaid, on the Hopsworks side: against a stand-in that answers as a
default Hopsworks cluster does (serving behind a feature flag that is off, executions that
an INITIALIZING stop leaves running, deactivation that ends no session, a project quota
of 5 per user), the suspension ladder stops every workload, keeps it stopped while the
account stays suspended, a member over an enforced budget loses their running work, and
no user of an account can run compute in a project hopsplane does not bill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import text

from hopsplane.clusters import service
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.usage import repository as usage_repo
from hopsplane.usage.schemas import NewEvent
from hopsplane.worker.runner import Worker
from tests.clusters.ladder import account_with_member, hooks, stopped_workloads
from tests.factories import Clock, add_cluster, jobs, signup, user


def _names(db: Database, owner: str, member: str) -> tuple[str, str, int]:
    o, m = user(db, owner), user(db, member)
    assert o.hopsworks_username and m.hopsworks_username and o.hopsworks_project_id
    return o.hopsworks_username, m.hopsworks_username, int(o.hopsworks_project_id)


def _hw_id(db: Database, user_id: str) -> int:
    return int((user(db, user_id).metadata_ or {})["hopsworks_user_id"])


def _later(clock: Clock, worker: Worker, minutes: int) -> None:
    clock.offset += timedelta(minutes=minutes)
    worker.tick()
    worker.run_pending()


def test_a_default_cluster_without_serving_still_stops_jobs_and_jupyter(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    assert hw.state.data_science_profile is False  # the default: /serving answers 400 120012
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m, project = _names(fresh_db, owner, member)
    etl = hw.run_job(project, "etl", o)
    hw.start_jupyter(project, m)
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert hw.state.projects[project]["jobs"]["etl"][0]["state"] == "KILLED"
    assert hw.state.projects[project]["jupyter"] == set()
    # the owner of the execution is read (expand=user), not left empty
    assert sorted(stopped_workloads(fresh_db)) == [("job_execution", str(etl), o), ("jupyter", m, m)]
    assert {j.status for j in jobs(fresh_db)} == {"done"}
    assert [j.task for j in jobs(fresh_db)].count("clusters.stop_workloads") == 1


def test_an_execution_still_initializing_counts_as_stopped_only_once_it_ended(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    hw.state.data_science_profile = True
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, _m, project = _names(fresh_db, owner, member)
    early = hw.run_job(project, "etl", o, state="INITIALIZING")  # no appId yet
    creating = hw.deploy(project, "fraud", o, status="Creating")  # runs no pods yet
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    # the stop answered 202 and changed nothing: not recorded, tried again later
    assert hw.state.execution(project, early)["state"] == "INITIALIZING"
    assert stopped_workloads(fresh_db) == []
    follow_up = jobs(fresh_db)[-1]
    assert (follow_up.task, follow_up.status, follow_up.args["round"]) == (
        "clusters.stop_workloads", "queued", 2)
    assert hw.state.projects[project]["servings"][creating]["status"] == "Creating"

    hw.give_app_id(project, early)  # YARN accepted it: now it can be killed
    _later(clock, worker, 1)
    assert hw.state.execution(project, early)["state"] == "KILLED"
    assert stopped_workloads(fresh_db) == [("job_execution", str(early), o)]


def test_jupyter_is_stopped_for_project_members_and_a_non_member_is_no_failure(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, _m, project = _names(fresh_db, owner, member)
    del hw.state.projects[project]["members"][user(fresh_db, member).email]  # left the project
    hw.start_jupyter(project, o)
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert stopped_workloads(fresh_db) == [("jupyter", o, o)]
    assert [j.task for j in jobs(fresh_db)].count("clusters.stop_workloads") == 1
    assert {j.status for j in jobs(fresh_db)} == {"done"}


def test_a_live_session_of_a_suspended_user_cannot_keep_compute_going(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m, project = _names(fresh_db, owner, member)
    session = hw.login(m)  # the member has the UI open
    first = hw.run_job(project, "train", m)
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert hw.state.users[_hw_id(fresh_db, member)]["status"] == "DEACTIVATED_ACCOUNT"
    assert stopped_workloads(fresh_db) == [("job_execution", str(first), m)]

    # deactivated, the member still starts the job again with the session they had
    started = httpx.post(f"{hw.url}/hopsworks-api/api/project/{project}/jobs/train/executions",
                         headers={"Authorization": f"Bearer {session}"})
    assert started.status_code == 201, started.text
    again = int(started.json()["id"])
    hw.give_app_id(project, again)
    hw.start_jupyter(project, m)

    _later(clock, worker, 5)  # before the sweep is due: still running
    assert hw.state.execution(project, again)["state"] == "RUNNING"
    _later(clock, worker, 6)  # the sweep (every 10 minutes by default)
    assert hw.state.execution(project, again)["state"] == "KILLED"
    assert hw.state.projects[project]["jupyter"] == set()
    assert sorted(stopped_workloads(fresh_db))[-2:] == sorted([
        ("job_execution", str(again), m), ("jupyter", m, m)])
    with fresh_db.transaction() as s:
        names = {w.name for w in service.stopped_workloads(s, owner)}
    assert f"train #{again}" in names and f"Jupyter of {m}" in names

    with fresh_db.transaction() as s:  # resumed: the sweep leaves the account alone
        hooks.account_resumed(s, owner)
    worker.run_pending()
    resumed = hw.run_job(project, "train", o)
    _later(clock, worker, 11)
    assert hw.state.execution(project, resumed)["state"] == "RUNNING"


def test_a_member_over_an_enforced_budget_loses_their_running_work_only(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    hw.state.data_science_profile = True
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m, project = _names(fresh_db, owner, member)
    session = hw.login(m)
    theirs = hw.run_job(project, "train", m)
    mine = hw.run_job(project, "etl", o)
    their_model = hw.deploy(project, "their-model", m)
    my_model = hw.deploy(project, "my-model", o)
    hw.start_jupyter(project, m)
    hw.start_jupyter(project, o)
    with fresh_db.transaction() as s:
        hooks.member_budget_exceeded(s, member, owner)
    worker.run_pending()
    state = hw.state.projects[project]
    assert hw.state.execution(project, theirs)["state"] == "KILLED"
    assert hw.state.execution(project, mine)["state"] == "RUNNING"
    assert state["servings"][their_model]["status"] == "Stopped"
    assert state["servings"][my_model]["status"] == "Running"
    assert state["jupyter"] == {o}
    stopped = stopped_workloads(fresh_db)
    assert sorted((k, r) for k, r, _u in stopped) == sorted([
        ("job_execution", str(theirs)), ("deployment", str(their_model)), ("jupyter", m)])
    # a deployment names its creator as "First Last": recorded as such, not as a username
    assert next(u for k, _r, u in stopped if k == "deployment") is None

    # while over budget, what they start again with their open session is stopped again
    started = httpx.post(f"{hw.url}/hopsworks-api/api/project/{project}/jobs/train/executions",
                         headers={"Authorization": f"Bearer {session}"})
    again = int(started.json()["id"])
    hw.give_app_id(project, again)
    _later(clock, worker, 11)
    assert hw.state.execution(project, again)["state"] == "KILLED"
    assert hw.state.execution(project, mine)["state"] == "RUNNING"


def test_users_of_an_account_cannot_create_projects_of_their_own(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m, _project = _names(fresh_db, owner, member)
    by_email = {u["username"]: u for u in hw.state.users.values()}
    assert (by_email[o]["maxNumProjects"], by_email[m]["maxNumProjects"]) == (1, 0)
    assert hw.create_project_as(o, "side_o")[0] == 400  # 150002: limit reached
    assert hw.create_project_as(m, "side_m")[0] == 400

    # users provisioned before the quota existed are corrected by the reconcile step
    for u in hw.state.users.values():
        u["maxNumProjects"] = 5
    _later(clock, worker, 20)
    assert (by_email[o]["maxNumProjects"], by_email[m]["maxNumProjects"]) == (1, 0)


def test_a_project_an_account_user_made_on_their_own_is_listed_and_billed_to_the_owner(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    for_old_users = hw.state.max_num_projects
    owner, member = account_with_member(fresh_db, box, hw, worker)
    _o, m, _project = _names(fresh_db, owner, member)
    # provisioned by an older hopsplane: the cluster's default quota
    hw.state.users[_hw_id(fresh_db, member)]["maxNumProjects"] = for_old_users
    assert hw.create_project_as(m, "side_lab")[0] == 200
    _later(clock, worker, 20)  # the reconcile step finds it
    with fresh_db.transaction() as s:
        [stray] = service.stray_projects(s, owner)
        cluster = service.assignment(s, owner)
    assert (stray.name, stray.namespace, stray.creator) == ("side_lab", "side-lab", m)
    assert cluster is not None

    with fresh_db.transaction() as s:  # a day of CPU collected in that namespace
        accepted, unmatched, _days = usage_repo.ingest(s, [NewEvent(
            event_id="prom:x:side-lab:2026-11-20", source=f"prometheus:{cluster.hopsworks_cluster_id}",
            cluster_id=cluster.hopsworks_cluster_id, account_id=None, project_id=None,
            namespace="side-lab", user_id=None, occurred_at=datetime(2026, 11, 20, 12, tzinfo=UTC),
            compute_units=Decimal("36000"), cpu_seconds=Decimal("12960"))])
        assert (accepted, unmatched) == (1, 0)
        billed = s.execute(text("SELECT account_owner_id, sum(compute_units) FROM usage_tracking "
                                "GROUP BY account_owner_id")).all()
    assert [(a, Decimal(u)) for a, u in billed] == [(owner, Decimal("36000"))]


def test_an_adopted_hopsworks_user_who_owns_projects_still_gets_the_accounts_project(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    owner = signup(fresh_db)  # no cluster yet: the account waits for one
    email = user(fresh_db, owner).email
    hw.state.users[10001] = {"id": 10001, "email": email, "username": "adopted1",
                             "firstname": "A", "lastname": "B", "status": "ACTIVATED_ACCOUNT",
                             "maxNumProjects": hw.state.max_num_projects}
    assert hw.create_project_as("adopted1", "their_own")[0] == 200
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    _later(clock, worker, 20)
    _later(clock, worker, 20)
    o = user(fresh_db, owner)
    assert o.hopsworks_username == "adopted1" and o.hopsworks_project_id
    assert hw.state.projects[o.hopsworks_project_id]["owner"] == email
    assert hw.state.users[10001]["maxNumProjects"] == 1
    with fresh_db.transaction() as s:
        assert [p.name for p in service.stray_projects(s, owner)] == ["their_own"]


def test_a_suspension_stops_what_runs_in_the_accounts_stray_projects_too(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m, project = _names(fresh_db, owner, member)
    hw.state.users[_hw_id(fresh_db, member)]["maxNumProjects"] = hw.state.max_num_projects
    assert hw.create_project_as(m, "side_lab")[0] == 200
    _later(clock, worker, 20)  # the audit records it
    with fresh_db.transaction() as s:
        [stray] = service.stray_projects(s, owner)
    side = hw.run_job(stray.id, "lab", m)
    hw.start_jupyter(stray.id, m)
    main = hw.run_job(project, "etl", o)
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert hw.state.execution(stray.id, side)["state"] == "KILLED"
    assert hw.state.execution(project, main)["state"] == "KILLED"
    assert hw.state.projects[stray.id]["jupyter"] == set()
    assert sorted(stopped_workloads(fresh_db)) == sorted([
        ("job_execution", str(main), o), ("job_execution", str(side), m),
        ("jupyter", f"{m}@{stray.id}", m)])
    # the owner is no member of the stray project: their 403 there is no failure
    assert [j.task for j in jobs(fresh_db)].count("clusters.stop_workloads") == 1
