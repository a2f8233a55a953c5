"""Provisioning jobs: make each account's Hopsworks side match the database.

Every job reads the current state when it runs and converges Hopsworks on it, with calls
that are idempotent (an existing user, project or membership is success), so a job can be
retried any number of times, and jobs of one account are serialised by their lock key.
A Hopsworks outage makes the job fail; the queue retries it with backoff and the periodic
``clusters.reconcile`` re-enqueues anything still unprovisioned, so nothing is lost.

Handlers need two services in the worker's context: ``box`` (SecretBox, to decrypt the
cluster's API key) and ``hopsworks`` (a HopsworksClientFactory).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.clusters import repository as repo
from hopsplane.clusters import service, tasks
from hopsplane.clusters.rules import CLUSTER_KEY, SUSPENDED_KEY, project_name_for, split_name
from hopsplane.crypto import SecretBox
from hopsplane.db.models import User
from hopsplane.errors import Unavailable
from hopsplane.integrations.hopsworks import HopsworksApi, HopsworksClientFactory
from hopsplane.worker.schemas import JobContext, Task

log = structlog.get_logger(__name__)

RECONCILE_EVERY = timedelta(minutes=15)


@contextmanager
def _client(session: Session, ctx: JobContext, cluster_id: uuid.UUID) -> Iterator[HopsworksApi]:
    box: SecretBox = ctx.services["box"]
    factory: HopsworksClientFactory = ctx.services["hopsworks"]
    conn = service.connection(session, box, cluster_id)
    client = factory(conn.api_url, conn.api_key.get_secret_value())
    try:
        yield client
    finally:
        client.close()


def _suspended(owner: User) -> bool:
    return bool((owner.metadata_ or {}).get(SUSPENDED_KEY, False))


def provision_owner(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    owner = repo.get_user(session, str(args["user_id"]))
    if owner is None or owner.account_owner_id is not None:
        return  # deleted, or now a member (provision_member takes over)
    placed = repo.assignment_of(session, owner.id)
    if placed is None:
        return  # placement pending: place_account provisions once it succeeds
    cluster_id = placed.hopsworks_cluster_id
    with _client(session, ctx, cluster_id) as client:
        first, last = split_name(owner.name, owner.email)
        hw_user = client.create_user(owner.email, first, last)
        repo.save_hopsworks_user(session, owner.id, hw_user.username, cluster_id, hw_user.id)
        project = client.create_project(
            project_name_for(owner.id), hw_user.username, f"hopsplane account {owner.id}"
        )
        repo.save_project(session, owner.id, project.id, project.name)
        if _suspended(owner):
            client.set_user_active(hw_user.id, False)
    log.info(
        "owner provisioned",
        account=owner.id,
        cluster=str(cluster_id),
        username=hw_user.username,
        project=project.name,
    )


def provision_member(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    member = repo.get_user(session, str(args["user_id"]))
    if member is None or member.account_owner_id is None:
        return
    owner = repo.get_user(session, member.account_owner_id)
    placed = repo.assignment_of(session, member.account_owner_id)
    if owner is None or placed is None:
        raise Unavailable(f"account {member.account_owner_id} has no cluster yet")
    cluster_id = placed.hopsworks_cluster_id
    with _client(session, ctx, cluster_id) as client:
        first, last = split_name(member.name, member.email)
        hw_user = client.create_user(member.email, first, last)
        repo.save_hopsworks_user(session, member.id, hw_user.username, cluster_id, hw_user.id)
        project_id = args.get("project_id", member.hopsworks_project_id)
        if project_id is not None:
            client.add_member(int(project_id), member.email)
        if _suspended(owner):
            client.set_user_active(hw_user.id, False)
    log.info(
        "member provisioned",
        account=owner.id,
        member=member.id,
        project=project_id,
    )


def sync_account_status(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Deactivate (suspended) or reactivate every provisioned Hopsworks user of an account."""
    owner = repo.get_user(session, str(args["user_id"]))
    if owner is None:
        return
    placed = repo.assignment_of(session, owner.id)
    if placed is None:
        return
    active = not _suspended(owner)
    cluster = str(placed.hopsworks_cluster_id)
    users = [owner, *repo.members_of(session, owner.id)]
    on_cluster = [
        u
        for u in users
        if (u.metadata_ or {}).get(CLUSTER_KEY) == cluster
        and (u.metadata_ or {}).get("hopsworks_user_id") is not None
    ]
    with _client(session, ctx, placed.hopsworks_cluster_id) as client:
        for user in on_cluster:
            client.set_user_active(int(user.metadata_["hopsworks_user_id"]), active)
    log.info("account status synced", account=owner.id, active=active, users=len(on_cluster))


def place_account(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Retry the placement of an account that found no capacity at sign-up."""
    service.assign_account(session, str(args["user_id"]))


def remove_member(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    project_id = args.get("project_id")
    placed = repo.assignment_of(session, str(args["owner_id"]))
    if project_id is None or placed is None:
        return
    with _client(session, ctx, placed.hopsworks_cluster_id) as client:
        client.remove_member(int(project_id), str(args["email"]))


def reconcile(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Periodic: re-enqueue provisioning for every user whose Hopsworks side is incomplete
    (catches jobs that ran out of attempts during a long outage)."""
    for user_id, is_member in repo.unprovisioned(session):
        if is_member:
            user = repo.get_user(session, user_id)
            tasks.enqueue_member_provisioning(
                session, user_id, user.account_owner_id if user else None
            )
        else:
            tasks.enqueue_owner_provisioning(session, user_id)


TASKS: tuple[Task, ...] = (
    Task(tasks.PROVISION_OWNER, provision_owner),
    Task(tasks.PROVISION_MEMBER, provision_member),
    Task(tasks.SYNC_ACCOUNT_STATUS, sync_account_status),
    Task(tasks.PLACE_ACCOUNT, place_account),
    Task(tasks.REMOVE_MEMBER, remove_member),
    Task(tasks.RECONCILE, reconcile, every=RECONCILE_EVERY, slot="clusters-reconcile"),
)
"""The clusters domain's jobs; the names and how they are enqueued are in
:mod:`hopsplane.clusters.tasks`."""
