"""What the suspension-ladder tests share: an owner and a member provisioned on a stand-in
cluster, and the workloads hopsplane recorded as stopped."""

from __future__ import annotations

from sqlalchemy import text

from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.worker.runner import Worker
from tests.factories import add_cluster, make_user, signup

hooks = ClusterHooks()


def account_with_member(
    db: Database, box: SecretBox, hw: FakeHopsworks, worker: Worker
) -> tuple[str, str]:
    """(owner, member), both provisioned on a cluster named eu-1 served by ``hw``."""
    with db.transaction() as s:
        add_cluster(s, box, "eu-1", api_url=hw.url, api_key=hw.state.api_key)
    owner = signup(db)
    worker.run_pending()
    with db.transaction() as s:
        member = make_user(s, owner=owner)
        hooks.member_joined(s, member, owner)
    worker.run_pending()
    return owner, member


def stopped_workloads(db: Database) -> list[tuple[str, str, str | None]]:
    """(kind, ref, hopsworks user) of every workload recorded as stopped, in order."""
    with db.transaction() as s:
        return [(r.kind, r.ref, r.hopsworks_user) for r in s.execute(text(
            "SELECT kind, ref, hopsworks_user FROM hopsplane.stopped_workloads ORDER BY id"))]
