"""Provisioning that never half-succeeds, against a stand-in that builds projects slowly,
refuses for good, loses projects and keeps signing keys whose deletion failed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from hopsplane.clusters import service
from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.clusters.provisioning import SigningKeys
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import PREFIX, FakeHopsworks, _error
from hopsplane.integrations.hopsworks import HopsworksClient
from hopsplane.worker.runner import Worker
from tests.factories import Clock, add_cluster, jobs, make_user, signup, user

CREATEAS = ("POST", PREFIX + "/admin/projects/createas")


def _cluster(db: Database, box: SecretBox, hw: FakeHopsworks) -> uuid.UUID:
    with db.transaction() as s:
        return add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key).id


def _keys(db: Database) -> list[str]:
    with db.transaction() as s:
        return [r[0] for r in s.execute(text(
            "SELECT key_name FROM hopsplane.hopsworks_signing_keys ORDER BY key_name"))]


def test_a_project_still_being_built_is_saved_only_once_its_owner_can_use_it(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    _cluster(fresh_db, box, hw)
    release = hw.hold_creation()
    try:
        owner = signup(fresh_db)
        worker.run_pending()  # createas outlasts its timeout; the project is ONGOING
        assert hw.state.requests.count(CREATEAS) == 1
        [pid] = hw.state.projects
        assert hw.state.projects[pid]["creationStatus"] == "ONGOING"
        assert user(fresh_db, owner).hopsworks_project_id is None  # not saved yet
        [job] = [j for j in jobs(fresh_db) if j.task == "clusters.provision_owner"]
        assert job.status == "queued" and "not usable by its owner yet" in job.last_error
        clock.offset += timedelta(minutes=5)
        worker.run_pending()  # still building: tried again later, one POST per attempt
        assert user(fresh_db, owner).hopsworks_project_id is None
    finally:
        release.set()
    while hw.state.held:
        release.wait(0.05)
    clock.offset += timedelta(minutes=30)
    worker.run_pending()
    assert user(fresh_db, owner).hopsworks_project_id == pid
    assert len(hw.state.projects) == 1
    assert hw.state.projects[pid]["creationStatus"] == "DONE"
    # one POST per attempt: timed out; 409 while ONGOING, not usable; 409, usable -> saved
    assert hw.state.requests.count(CREATEAS) == 3
    [job] = [j for j in jobs(fresh_db) if j.task == "clusters.provision_owner"]
    assert (job.status, job.attempts) == ("done", 3)


def test_a_refusal_retrying_cannot_fix_fails_the_job_at_once_with_an_operator_error(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    cluster_id = _cluster(fresh_db, box, hw)
    hw.state.refuse["POST /admin/users"] = (400, _error(160014, "Invalid email format."))
    signup(fresh_db)
    worker.run_pending()
    [job] = [j for j in jobs(fresh_db) if j.task == "clusters.provision_owner"]
    assert (job.status, job.attempts) == ("done", 1)  # no retries
    assert hw.state.requests.count(("POST", PREFIX + "/admin/users")) == 1
    with fresh_db.transaction() as s:
        error = service.get_cluster(s, cluster_id).operator_error
    assert error and "160014" in error and "retrying cannot fix" in error


def test_an_adopted_administrator_is_an_operator_error_named_on_the_cluster(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    cluster_id = _cluster(fresh_db, box, hw)
    owner = signup(fresh_db)
    hw.state.add_user(user(fresh_db, owner).email, roles=("HOPS_ADMIN",))
    worker.run_pending()
    with fresh_db.transaction() as s:
        error = service.get_cluster(s, cluster_id).operator_error
    assert error and "HOPS_ADMIN" in error and user(fresh_db, owner).email in error
    assert user(fresh_db, owner).hopsworks_username is None
    assert hw.state.projects == {}


def test_a_saved_project_gone_from_the_cluster_is_found_and_provisioned_again(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    _cluster(fresh_db, box, hw)
    owner = signup(fresh_db)
    worker.run_pending()
    first = user(fresh_db, owner).hopsworks_project_id
    assert first is not None
    del hw.state.projects[first]  # deleted by hand on the cluster
    clock.offset += timedelta(minutes=20)
    worker.tick()  # reconcile -> the cluster audit -> provisioning again
    worker.run_pending()
    again = user(fresh_db, owner).hopsworks_project_id
    assert again is not None and again != first and again in hw.state.projects
    assert hw.state.projects[again]["creationStatus"] == "DONE"


def test_a_signing_key_whose_deletion_failed_is_deleted_by_the_sweep(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker, clock: Clock,
) -> None:
    cluster_id = _cluster(fresh_db, box, hw)
    owner = signup(fresh_db)
    worker.run_pending()
    assert _keys(fresh_db) == [] and hw.state.signing_keys == set()
    client = HopsworksClient(hw.url, hw.state.api_key, hw.state.auth_api_key, timeout=5,
                             retries=0, backoff=0)
    client.key_ledger = SigningKeys(fresh_db, cluster_id)
    hw.state.outage_after = f"POST {PREFIX}/jwt"  # down right after the token is signed
    with client.acting_as(str(user(fresh_db, owner).hopsworks_username)):
        pass  # DELETE /jwt/key fails: the key stays on the cluster
    client.close()
    hw.state.outage = 0
    [left] = _keys(fresh_db)
    assert left.startswith("hopsplane-") and hw.state.signing_keys == {left}
    clock.offset += timedelta(minutes=20)  # past the token's lifetime
    worker.tick()
    worker.run_pending()
    assert hw.state.signing_keys == set()
    assert _keys(fresh_db) == []


def test_an_account_on_a_cluster_of_10000_users_is_provisioned_without_listing_them(
    fresh_db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker,
) -> None:
    _cluster(fresh_db, box, hw)
    for i in range(10_000):
        hw.state.add_user(f"someone{i:05d}@example.com")
    owner = signup(fresh_db)
    hw.state.add_user(user(fresh_db, owner).email)  # an existing plain user: adopted
    with fresh_db.transaction() as s:
        member = make_user(s, owner=owner)
        ClusterHooks().member_joined(s, member, owner)
    worker.run_pending()
    o, m = user(fresh_db, owner), user(fresh_db, member)
    assert o.hopsworks_project_id is not None and m.hopsworks_username
    assert m.email in hw.state.projects[o.hopsworks_project_id]["members"]
    assert hw.state.users_listed < 10  # rows of GET /admin/users, every call together
