"""The suspension ladder and operator errors against a server that answers (and refuses)
like Hopsworks: users deactivated, then the account's running work stopped as its owner
and users, recorded, shown after resumption; nothing restarted automatically."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from hopsplane.clusters import service, tasks
from hopsplane.clusters.schemas import ClusterUpdate
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.worker.runner import Worker
from tests.clusters.ladder import account_with_member, hooks, stopped_workloads
from tests.factories import Clock, add_cluster, jobs, make_user, signup, user


def test_suspension_deactivates_then_stops_and_records_what_ran_and_resumption_restarts_nothing(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    hw.state.data_science_profile = True  # a cluster that serves models
    owner, member = account_with_member(fresh_db, box, hw, worker)
    o, m = user(fresh_db, owner), user(fresh_db, member)
    project = int(o.hopsworks_project_id or 0)
    assert o.hopsworks_username and m.hopsworks_username
    etl = hw.run_job(project, "etl", o.hopsworks_username)
    train = hw.run_job(project, "train", m.hopsworks_username, state="ACCEPTED")
    done = hw.run_job(project, "etl", o.hopsworks_username, state="FINISHED")
    fraud = hw.deploy(project, "fraud", o.hopsworks_username)
    hw.deploy(project, "old", o.hopsworks_username, status="Stopped")
    hw.start_jupyter(project, m.hopsworks_username)

    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert {u["status"] for u in hw.state.users.values()} == {"DEACTIVATED_ACCOUNT"}
    state = hw.state.projects[project]
    assert {e["id"]: e["state"] for e in state["jobs"]["etl"] + state["jobs"]["train"]} == {
        etl: "KILLED", train: "KILLED", done: "FINISHED"}
    assert state["servings"][fraud]["status"] == "Stopped" and state["jupyter"] == set()
    assert sorted(stopped_workloads(fresh_db)) == sorted([
        ("job_execution", str(etl), o.hopsworks_username),
        ("job_execution", str(train), m.hopsworks_username),
        ("deployment", str(fraud), None),  # Hopsworks names its creator "First Last" only
        ("jupyter", m.hopsworks_username, m.hopsworks_username),
    ])
    assert hw.state.signing_keys == set()
    tasks = [j.task for j in jobs(fresh_db)]
    assert tasks[-2:] == ["clusters.sync_account_status", "clusters.stop_workloads"]

    # the stop job again (a retry) changes nothing and records nothing twice
    with fresh_db.transaction() as s:
        args = jobs(fresh_db)[-1].args
        s.execute(text("INSERT INTO hopsplane.jobs (task, args) VALUES "
                       "('clusters.stop_workloads', CAST(:a AS jsonb))"),
                  {"a": json.dumps(args)})
    worker.run_pending()
    assert len(stopped_workloads(fresh_db)) == 4

    with fresh_db.transaction() as s:
        hooks.account_resumed(s, owner)
    worker.run_pending()
    assert {u["status"] for u in hw.state.users.values()} == {"ACTIVATED_ACCOUNT"}
    assert state["servings"][fraud]["status"] == "Stopped"  # not restarted
    with fresh_db.transaction() as s:
        shown = service.stopped_workloads(s, owner)
    creator = hw.state.display_name(o.hopsworks_username)
    assert {w.name for w in shown} == {f"etl #{etl}", f"train #{train}",
                                      f"fraud (created by {creator})",
                                      f"Jupyter of {m.hopsworks_username}"}
    assert {j.status for j in jobs(fresh_db)} == {"done"}
    # neither key nor any token reached the logs
    logged = capsys.readouterr().out + caplog.text
    assert hw.state.tokens and "owner provisioned" in logged
    for secret in (hw.state.api_key, hw.state.auth_api_key, *hw.state.tokens):
        assert secret not in logged


def test_a_workload_that_will_not_stop_leaves_the_others_stopped_and_is_tried_again(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock
) -> None:
    hw.state.data_science_profile = True
    owner, _member = account_with_member(fresh_db, box, hw, worker)
    o = user(fresh_db, owner)
    project = int(o.hopsworks_project_id or 0)
    etl = hw.run_job(project, "etl", str(o.hopsworks_username))
    fraud = hw.deploy(project, "fraud", str(o.hopsworks_username))
    hw.state.refuse[f"POST /project/{project}/serving/{fraud}"] = (
        400, {"errorCode": 240006, "errorMsg": "Lifecycle error", "usrMsg": "busy"})
    with fresh_db.transaction() as s:
        hooks.account_suspended(s, owner)
    worker.run_pending()
    assert stopped_workloads(fresh_db) == [("job_execution", str(etl), o.hopsworks_username)]
    follow_up = jobs(fresh_db)[-1]
    assert (follow_up.task, follow_up.status, follow_up.args["round"]) == (
        "clusters.stop_workloads", "queued", 2)
    hw.state.refuse.clear()
    clock.offset += timedelta(minutes=1)
    worker.run_pending()
    assert hw.state.projects[project]["servings"][fraud]["status"] == "Stopped"
    assert [k for k, _ref, _u in stopped_workloads(fresh_db)] == ["job_execution", "deployment"]


def test_a_cluster_older_than_3_7_is_an_operator_error_not_a_retry_loop(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock
) -> None:
    hw.state.version = "3.5.0"
    owner, member = account_with_member(fresh_db, box, hw, worker)
    # created, but never saved: only its owner can say it is usable, and no token of the
    # owner can be had on 3.5
    assert user(fresh_db, owner).hopsworks_project_id is None
    [project] = hw.state.projects
    email = user(fresh_db, member).email
    assert email not in hw.state.projects[project]["members"]
    with fresh_db.transaction() as s:
        [cluster] = service.list_clusters(s)[0]
    assert cluster.operator_error and "3.5" in cluster.operator_error
    assert [(j.task, j.status) for j in jobs(fresh_db)][-1] == ("clusters.provision_member", "done")
    clock.offset += timedelta(minutes=20)
    worker.tick()  # reconcile leaves a cluster with an operator error alone
    worker.run_pending()
    assert [j.task for j in jobs(fresh_db)].count("clusters.provision_member") == 1

    hw.state.version = "3.8.0"  # the operator upgrades, then updates the cluster's key
    with fresh_db.transaction() as s:
        service.update_cluster(s, box, cluster.id, ClusterUpdate.model_validate(
            {"auth_api_key": hw.state.auth_api_key}))
    clock.offset += timedelta(minutes=20)
    worker.tick()
    worker.run_pending()
    assert hw.state.projects[project]["members"][email] == "Data scientist"
    with fresh_db.transaction() as s:
        assert service.get_cluster(s, cluster.id).operator_error is None


def test_a_missing_or_wrong_auth_key_is_an_operator_error(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker
) -> None:
    with fresh_db.transaction() as s:
        cluster = add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key,
                              auth_api_key=None)
    owner = signup(fresh_db)
    worker.run_pending()
    with fresh_db.transaction() as s:
        hooks.member_joined(s, make_user(s, owner=owner), owner)
    worker.run_pending()
    with fresh_db.transaction() as s:
        assert "no AUTH API key" in str(service.get_cluster(s, cluster.id).operator_error)
        service.update_cluster(s, box, cluster.id, ClusterUpdate.model_validate(
            {"auth_api_key": hw.state.api_key}))  # the admin key: no AUTH scope
        # the owner's project is saved only once the owner's token says it is usable
        assert s.get(User, owner).hopsworks_project_id is None  # type: ignore[union-attr]
        tasks.enqueue_owner_provisioning(s, owner)  # what the next reconcile does
        hooks.member_joined(s, make_user(s, owner=owner), owner)
    worker.run_pending()
    with fresh_db.transaction() as s:
        assert "AUTH scope" in str(service.get_cluster(s, cluster.id).operator_error)
    assert hw.state.signing_keys == set()
