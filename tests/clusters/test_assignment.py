"""Placing accounts on clusters: most free capacity first, never full/draining/disabled,
counts derived by the database, moves by hand, and no overfill under concurrent sign-ups."""

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hopsplane.clusters import service
from hopsplane.clusters.rules import ClusterStatus
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict, Invalid, NotFound, Unavailable
from tests.factories import add_cluster, make_user


def _count(session: Session, cluster_id: uuid.UUID) -> int:
    return service.get_cluster(session, cluster_id).current_users


def test_places_on_the_cluster_with_most_free_capacity(session: Session, box: SecretBox) -> None:
    small = add_cluster(session, box, "small", max_users=2)
    big = add_cluster(session, box, "big", max_users=3)
    placed = [service.assign_account(session, make_user(session)).hopsworks_cluster_id
              for _ in range(5)]
    # free: big 3 vs small 2 -> big; then 2/2 tie -> lowest id; ... both end full
    assert placed.count(big.id) == 3 and placed.count(small.id) == 2
    assert _count(session, big.id) == 3 and _count(session, small.id) == 2
    with pytest.raises(Unavailable, match="no active Hopsworks cluster has free capacity"):
        service.assign_account(session, make_user(session))


def test_draining_and_disabled_clusters_are_never_chosen(session: Session, box: SecretBox) -> None:
    a = add_cluster(session, box, "a", max_users=50)
    b = add_cluster(session, box, "b", max_users=40)
    c = add_cluster(session, box, "c", max_users=1)
    service.set_status(session, a.id, ClusterStatus.DRAINING)
    service.set_status(session, b.id, ClusterStatus.DISABLED)
    assert service.assign_account(session, make_user(session)).hopsworks_cluster_id == c.id
    with pytest.raises(Unavailable):
        service.assign_account(session, make_user(session))


def test_assignment_is_idempotent_and_only_for_owners(session: Session, box: SecretBox) -> None:
    add_cluster(session, box, "a")
    owner = make_user(session)
    first = service.assign_account(session, owner)
    assert service.assign_account(session, owner) == first
    member = make_user(session, owner=owner)
    with pytest.raises(Invalid, match="team member"):
        service.assign_account(session, member)
    with pytest.raises(NotFound):
        service.assign_account(session, "auth0|nobody")


def test_assignment_queues_provisioning(session: Session, box: SecretBox) -> None:
    add_cluster(session, box, "a")
    owner = make_user(session)
    service.assign_account(session, owner)
    tasks = session.execute(text("SELECT task, args->>'user_id' FROM hopsplane.jobs")).all()
    assert tasks == [("clusters.provision_owner", owner)]


def test_admin_moves_an_account_by_hand(session: Session, box: SecretBox) -> None:
    a = add_cluster(session, box, "a", max_users=5)
    b = add_cluster(session, box, "b", max_users=1)
    owner = make_user(session)
    service.assign_account(session, owner)
    moved = service.move_account(session, owner, b.id, assigned_by="admin|1")
    assert (moved.hopsworks_cluster_id, moved.assigned_by) == (b.id, "admin|1")
    assert _count(session, a.id) == 0 and _count(session, b.id) == 1
    other = make_user(session)
    with pytest.raises(Conflict, match="full"):
        service.move_account(session, other, b.id, assigned_by="admin|1")
    service.set_status(session, a.id, ClusterStatus.DISABLED)
    with pytest.raises(Conflict, match="disabled"):
        service.move_account(session, other, a.id, assigned_by="admin|1")
    assert service.assignment(session, other) is None


def test_current_users_is_derived_and_cannot_be_written(session: Session, box: SecretBox) -> None:
    a = add_cluster(session, box, "a")
    owner = make_user(session)
    service.assign_account(session, owner)
    with pytest.raises(DBAPIError, match="derived from account_clusters"), session.begin_nested():
        session.execute(text("UPDATE hopsworks_clusters SET current_users = 7"))
    session.execute(text("DELETE FROM users WHERE id = :id"), {"id": owner})  # cascades
    assert _count(session, a.id) == 0
    assert service.count_drift(session) == []


def test_capacity_cannot_be_lowered_below_the_accounts_held(session: Session, box: SecretBox) -> None:
    from hopsplane.clusters.schemas import ClusterUpdate

    a = add_cluster(session, box, "a", max_users=3)
    service.assign_account(session, make_user(session))
    service.assign_account(session, make_user(session))
    with pytest.raises(Conflict, match="holds 2 accounts"):
        service.update_cluster(session, box, a.id, ClusterUpdate(max_users=1))
    assert service.update_cluster(session, box, a.id, ClusterUpdate(max_users=2)).free_capacity == 0


def test_concurrent_sign_ups_never_overfill(fresh_url: str, settings: Any, box: SecretBox) -> None:
    """24 sign-ups race for 2 + 3 + 4 = 9 places on three clusters: exactly 9 are placed,
    no cluster goes over its max, everyone else gets a clear Unavailable."""
    seed = Database(fresh_url, settings)
    with seed.transaction() as s:
        clusters = [add_cluster(s, box, n, max_users=m) for n, m in (("a", 2), ("b", 3), ("c", 4))]
        owners = [make_user(s) for _ in range(24)]
    dbs = [Database(fresh_url, settings) for _ in range(6)]
    barrier = threading.Barrier(len(owners))
    outcomes: dict[str, str] = {}

    def sign_up(i: int, owner: str) -> None:
        db = dbs[i % len(dbs)]
        barrier.wait()
        try:
            with db.transaction() as s:
                out = service.assign_account(s, owner)
            outcomes[owner] = str(out.hopsworks_cluster_id)
        except Unavailable:
            outcomes[owner] = "unavailable"
        except Exception as exc:  # any other error is a failure of the test
            outcomes[owner] = f"error {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=sign_up, args=(i, o)) for i, o in enumerate(owners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.dispose()
    errors = [v for v in outcomes.values() if v.startswith("error")]
    assert errors == []
    placed = [v for v in outcomes.values() if v != "unavailable"]
    assert len(placed) == 9
    with seed.transaction() as s:
        for c in clusters:
            now = service.get_cluster(s, c.id)
            assert now.current_users == now.max_users == placed.count(str(c.id))
        assert service.count_drift(s) == []
    seed.dispose()


def test_moves_racing_sign_ups_neither_deadlock_nor_drift(
    fresh_url: str, settings: Any, box: SecretBox
) -> None:
    seed = Database(fresh_url, settings)
    with seed.transaction() as s:
        a = add_cluster(s, box, "a", max_users=30)
        b = add_cluster(s, box, "b", max_users=30)
        movers = [make_user(s) for _ in range(6)]
        for m in movers:
            service.move_account(s, m, a.id, assigned_by="seed")
        newcomers = [make_user(s) for _ in range(12)]
    dbs = [Database(fresh_url, settings) for _ in range(6)]
    errors: list[str] = []
    barrier = threading.Barrier(len(movers) + len(newcomers))

    def move(i: int, owner: str) -> None:
        barrier.wait()
        for target in (b.id, a.id, b.id):
            try:
                with dbs[i % 6].transaction() as s:
                    service.move_account(s, owner, target, assigned_by="admin")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    def sign_up(i: int, owner: str) -> None:
        barrier.wait()
        try:
            with dbs[i % 6].transaction() as s:
                service.assign_account(s, owner)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=move, args=(i, o)) for i, o in enumerate(movers)]
    threads += [threading.Thread(target=sign_up, args=(i, o)) for i, o in enumerate(newcomers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.dispose()
    assert errors == []
    with seed.transaction() as s:
        assert service.count_drift(s) == []
        total = service.get_cluster(s, a.id).current_users + service.get_cluster(s, b.id).current_users
        assert total == len(movers) + len(newcomers)
        assert all(service.assignment(s, m).hopsworks_cluster_id == b.id for m in movers)  # type: ignore[union-attr]
    seed.dispose()
