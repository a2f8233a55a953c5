"""Provisioning end to end: the hooks record work in the caller's transaction, the worker
runs it against a local server that answers like Hopsworks, outages delay and lose nothing."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from hopsplane.clusters import repository as repo
from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.clusters.rules import project_name_for
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.integrations.hopsworks import HopsworksClient, namespace_of
from hopsplane.worker.runner import Worker
from tests.factories import Clock, add_cluster, jobs, make_user, signup, user

hooks = ClusterHooks()


def test_owner_then_member_then_suspension_and_resumption(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    assert worker.run_pending() == 1

    o = user(fresh_db, owner)
    assert o.hopsworks_username and o.hopsworks_project_id
    name = project_name_for(owner)
    assert o.metadata_["hopsworks_project_name"] == name
    assert namespace_of(name) == name.replace("_", "-")
    assert o.metadata_["hopsworks_namespace"] == namespace_of(name)
    project = hw.state.projects[o.hopsworks_project_id]
    assert project["name"] == name and project["owner"] == o.email
    assert {"FEATURESTORE", "JOBS", "JUPYTER"} <= set(project["services"])

    with fresh_db.transaction() as s:
        member = make_user(s, owner=owner)
        s.execute(text("UPDATE users SET hopsworks_project_id = :p WHERE id = :m"),
                  {"p": o.hopsworks_project_id, "m": member})
        hooks.member_joined(s, member, owner)
    worker.run_pending()
    m = user(fresh_db, member)
    assert m.hopsworks_username
    assert project["members"][m.email] == "Data scientist"
    assert m.metadata_["hopsworks_member_of"] == str(o.hopsworks_project_id)
    assert hw.state.signing_keys == set()  # the owner's signing key was deleted

    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert {u["status"] for u in hw.state.users.values()} == {"DEACTIVATED_ACCOUNT"}
    with fresh_db.transaction() as s:
        hooks.account_resumed(s, owner)
    worker.run_pending()
    assert {u["status"] for u in hw.state.users.values()} == {"ACTIVATED_ACCOUNT"}
    assert {j.status for j in jobs(fresh_db)} == {"done"}

    with fresh_db.transaction() as s:
        hooks.member_removed(s, member, owner)
    worker.run_pending()
    assert m.email not in project["members"]


def test_a_hopsworks_outage_delays_provisioning_and_loses_nothing(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    hw.fail_next(1000)
    owner = signup(fresh_db)
    worker.run_pending()
    worker.run_pending()  # not due again yet: nothing runs
    [job] = jobs(fresh_db)
    assert (job.status, job.attempts) == ("queued", 1)
    assert "HopsworksUnavailable" in job.last_error
    assert user(fresh_db, owner).hopsworks_username is None

    clock.offset += timedelta(seconds=6)
    worker.run_pending()
    assert jobs(fresh_db)[0].attempts == 2
    hw.fail_next(0)  # Hopsworks is back
    clock.offset += timedelta(minutes=1)
    assert worker.run_pending() == 1
    [job] = jobs(fresh_db)
    assert (job.status, job.attempts) == ("done", 3)
    o = user(fresh_db, owner)
    assert o.hopsworks_username and o.hopsworks_project_id
    assert len(hw.state.users) == 1 and len(hw.state.projects) == 1


def test_a_retry_after_a_half_done_attempt_creates_nothing_twice(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock
) -> None:
    """The user is created, then Hopsworks fails on the project: the retry finds the
    existing user (409) and finishes the job."""
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    hw.state.outage_after = "POST /hopsworks-api/api/admin/users"
    worker.run_pending()
    assert len(hw.state.users) == 1 and not hw.state.projects
    assert user(fresh_db, owner).hopsworks_username is None  # rolled back with the job
    hw.fail_next(0)
    clock.offset += timedelta(minutes=1)
    worker.run_pending()
    assert len(hw.state.users) == 1 and len(hw.state.projects) == 1
    assert user(fresh_db, owner).hopsworks_project_id is not None


def test_sign_up_without_capacity_succeeds_and_is_placed_later(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock
) -> None:
    owner = signup(fresh_db)  # no cluster at all
    assert [(j.task, j.status) for j in jobs(fresh_db)] == [("clusters.place_account", "queued")]
    worker.run_pending()
    assert jobs(fresh_db)[0].status == "queued"  # retried later
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    clock.offset += timedelta(minutes=5)
    worker.run_pending()
    assert user(fresh_db, owner).hopsworks_project_id is not None


def test_the_placement_of_someone_who_joined_a_team_stops_at_once(
    fresh_db: Database, worker: Worker
) -> None:
    owner = signup(fresh_db)  # no cluster at all: placement is retried
    with fresh_db.transaction() as s:
        team = make_user(s)
        s.execute(text("UPDATE users SET account_owner_id = :t WHERE id = :u"),
                  {"t": team, "u": owner})
    worker.run_pending()
    placements = [j for j in jobs(fresh_db) if j.task == "clusters.place_account"]
    assert [(j.status, j.attempts) for j in placements] == [("done", 1)]


def test_hooks_are_undone_with_the_callers_transaction(fresh_db: Database, box: SecretBox) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1")
    with pytest.raises(RuntimeError), fresh_db.transaction() as s:
        owner = make_user(s)
        hooks.account_created(s, owner)
        hooks.account_suspended(s, owner)
        raise RuntimeError("sign-up failed later")
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.jobs")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM account_clusters")).scalar() == 0
        assert s.execute(text("SELECT current_users FROM hopsworks_clusters")).scalar() == 0


def test_reconcile_requeues_what_ran_out_of_attempts(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
    settings: Settings,
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    with fresh_db.transaction() as s:
        s.execute(text("UPDATE hopsplane.jobs SET status = 'failed', finished_at = now()"))
    clock.offset += timedelta(minutes=20)
    worker.tick()  # the periodic reconcile slot
    worker.run_pending()
    assert user(fresh_db, owner).hopsworks_project_id is not None


def test_a_joining_member_lands_in_the_owners_project_and_project_assigned_is_idempotent(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    worker.run_pending()
    project_id = user(fresh_db, owner).hopsworks_project_id
    assert project_id is not None
    with fresh_db.transaction() as s:
        member = make_user(s, owner=owner)
        hooks.member_joined(s, member, owner)
    worker.run_pending()
    email = user(fresh_db, member).email
    assert hw.state.projects[project_id]["members"][email] == "Data scientist"
    with fresh_db.transaction() as s:
        hooks.project_assigned(s, member, project_id)
    worker.run_pending()
    assert email in hw.state.projects[project_id]["members"]
    assert len([u for u in hw.state.users.values() if u["email"] == email]) == 1
    assert {j.status for j in jobs(fresh_db)} == {"done"}


def test_a_member_assigned_to_another_project_of_the_owner_moves_there(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker
) -> None:
    with fresh_db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(fresh_db)
    worker.run_pending()
    o = user(fresh_db, owner)
    first = int(o.hopsworks_project_id or 0)
    admin = HopsworksClient(hw.url, hw.state.api_key, retries=0)
    # an owner may own one project; the operator raises the quota for a second one
    admin.set_max_projects(int(o.metadata_["hopsworks_user_id"]), 2)
    second = admin.create_project("hp_second", str(o.hopsworks_username), "d").id
    with fresh_db.transaction() as s:
        member = make_user(s, owner=owner)
        hooks.member_joined(s, member, owner)
    worker.run_pending()
    email = user(fresh_db, member).email
    with fresh_db.transaction() as s:  # as teams.assign_project does
        s.execute(text("UPDATE users SET hopsworks_project_id = :p WHERE id = :m"),
                  {"p": second, "m": member})
        hooks.project_assigned(s, member, second)
    worker.run_pending()
    assert email in hw.state.projects[second]["members"]
    assert email not in hw.state.projects[first]["members"]
    assert user(fresh_db, member).metadata_["hopsworks_member_of"] == str(second)
    with fresh_db.transaction() as s:  # the owner's assignment stands: reconcile has no work
        assert repo.unprovisioned(s) == []
