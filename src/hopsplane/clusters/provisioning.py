"""Provisioning jobs: make each account's Hopsworks side match the database.

Every job reads the current state when it runs and converges Hopsworks on it, with calls
that are idempotent (an existing user, project or membership is success), so a job can be
retried any number of times, and jobs of one account are serialised by their lock key.
A Hopsworks outage makes the job fail; the queue retries it with backoff and the periodic
``clusters.reconcile`` re-enqueues anything still unprovisioned, so nothing is lost. A
refusal that retrying cannot fix (a 4xx: a name taken by someone else, an account hopsplane
may not adopt, a certificate it does not trust) ends the job at once and is recorded as the
cluster's operator error instead of being retried.

An account's project is saved only once it is usable: ``createas`` is sent once per attempt
with its own long timeout (Hopsworks builds the project inside the call); after a timeout or
409 the project is found by name and then checked as its owner (``GET /project/{id}``,
``creationStatus`` DONE); until then the job is retried with the queue's backoff
(``ProjectNotReady``), a bounded wait. A saved project that disappears from the cluster is
found by the cluster audit and provisioned again.

What only a project member may do (members, jobs, Jupyter, deployments) is done with a
short-lived token of the project's owner (or, for a Jupyter server, of its user), signed
with the cluster's AUTH key (:meth:`HopsworksClient.acting_as`). A cluster that cannot sign
tokens (no AUTH key, a key without the AUTH scope, Hopsworks older than 3.7) is an operator
error: it is recorded on the cluster, the job ends, and reconcile leaves the cluster alone
until `hopsplane clusters update` fixes it.

Handlers use the worker's services (:class:`~hopsplane.worker.schemas.JobServices`): ``box``
to decrypt the cluster's API keys, ``hopsworks`` to build its client, ``database`` to record
signing keys in transactions of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.clusters import repository as repo
from hopsplane.clusters import service, tasks
from hopsplane.clusters.rules import (
    BUDGET_STOPPED_KEY,
    CLUSTER_KEY,
    MEMBER_MAX_PROJECTS,
    MEMBER_OF_KEY,
    OWNER_MAX_PROJECTS,
    SUSPENDED_KEY,
    SUSPENSION_KEY,
    budget_stop_id,
    project_name_for,
    project_services,
    split_name,
)
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.errors import Unavailable
from hopsplane.integrations.hopsworks import (
    JWT_SINCE,
    HopsworksApi,
    HopsworksMisconfigured,
    HopsworksProject,
    HopsworksRejected,
    HopsworksUser,
    OwnerSession,
)
from hopsplane.integrations.hopsworks.errors import NUM_PROJECTS_LIMIT_REACHED
from hopsplane.integrations.hopsworks.owner import PROJECT_NOT_FOUND
from hopsplane.worker.schemas import Handler, JobContext, Task

log = structlog.get_logger(__name__)

MAX_STOP_ROUNDS = 10
RECONCILE_EVERY = timedelta(minutes=15)
SWEEP_TICK = timedelta(minutes=1)
"""How often the sweep looks for accounts due to be swept; each is swept every
``Settings.suspension_sweep_minutes``."""


def _now(ctx: JobContext) -> datetime:
    """The worker's clock (``JobContext.clock``: tests and benchmarks move it)."""
    return ctx.clock()


def _sweep_every(ctx: JobContext) -> timedelta:
    return timedelta(minutes=ctx.services.settings.suspension_sweep_minutes)


@contextmanager
def _client(session: Session, ctx: JobContext, cluster_id: uuid.UUID) -> Iterator[HopsworksApi]:
    services = ctx.services
    conn = service.connection(session, services.box, cluster_id)
    auth = conn.auth_api_key.get_secret_value() if conn.auth_api_key else None
    client = services.hopsworks(conn.api_url, conn.api_key.get_secret_value(), auth,
                                ca_bundle=conn.ca_bundle)
    client.key_ledger = SigningKeys(services.database, cluster_id)
    try:
        yield client
    finally:
        client.close()


class SigningKeys:
    """The record of the signing keys hopsplane makes on a cluster, written in transactions
    of their own so that it survives the job's rollback: a key is recorded before
    ``POST /jwt`` and forgotten once ``DELETE /jwt/key`` succeeded; what is left is deleted
    by the cluster audit once its token has expired (:func:`hopsplane.clusters.enforcement.
    audit_cluster`)."""

    def __init__(self, database: Database, cluster_id: uuid.UUID) -> None:
        self._database = database
        self._cluster_id = cluster_id

    def opened(self, key_name: str) -> None:
        with self._database.transaction() as session:
            repo.record_signing_key(session, self._cluster_id, key_name)

    def closed(self, key_name: str) -> None:
        with self._database.transaction() as session:
            repo.forget_signing_key(session, key_name)


@contextmanager
def _as_user(client: HopsworksApi, username: str) -> Iterator[OwnerSession]:
    """A session of ``username``, after checking that the cluster can sign tokens with an
    API key at all (``/jwt`` takes one since Hopsworks 3.7)."""
    version = client.version()
    if version is not None and version < JWT_SINCE:
        raise HopsworksMisconfigured(
            f"Hopsworks {'.'.join(map(str, version))} cannot sign user tokens with an API key "
            "(POST /jwt takes an AUTH-scope key since 3.7): upgrade the cluster"
        )
    with client.acting_as(username) as user_session:
        yield user_session


def _operator_errors(handler: Handler) -> Handler:
    """Run ``handler``; what retrying cannot fix ends the job and is recorded on the cluster
    of the account: a HopsworksMisconfigured, or a 4xx refusal (the worker's retries are for
    outages). A project that no longer exists (404 PROJECT_NOT_FOUND) is not the cluster's
    fault: the job ends and the cluster audit provisions the account again."""

    def run(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        cluster = _cluster_of(session, args)
        try:
            with session.begin_nested():
                handler(session, args, ctx)
        except HopsworksMisconfigured as exc:
            if cluster is None:
                raise
            service.report_operator_error(session, cluster, exc.message)
            log.error("hopsworks cluster needs an operator", cluster=str(cluster),
                      error=exc.message)
        except HopsworksRejected as exc:
            if cluster is None or not 400 <= exc.http_status < 500:
                raise
            if exc.http_status == 404 and exc.error_code == PROJECT_NOT_FOUND:
                log.warning("hopsworks project gone; the cluster audit provisions it again",
                            cluster=str(cluster), error=exc.message)
                tasks.enqueue_cluster_audit(session, str(cluster))
                return
            message = f"{exc.message} (retrying cannot fix a {exc.http_status})"
            service.report_operator_error(session, cluster, message)
            log.error("hopsworks refused; the cluster needs an operator", cluster=str(cluster),
                      error=message)

    run.__doc__ = handler.__doc__
    return run


def _cluster_of(session: Session, args: dict[str, Any]) -> uuid.UUID | None:
    user = repo.get_user(session, str(args.get("owner_id") or args["user_id"]))
    if user is None:
        return None
    placed = repo.assignment_of(session, user.account_owner_id or user.id)
    return None if placed is None else placed.hopsworks_cluster_id


def _suspended(owner: User) -> bool:
    return bool((owner.metadata_ or {}).get(SUSPENDED_KEY, False))


def _budget_stopped(user: User) -> bool:
    return bool((user.metadata_ or {}).get(BUDGET_STOPPED_KEY, False))


def _provision_owner(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    owner = repo.get_user(session, str(args["user_id"]))
    if owner is None or owner.account_owner_id is not None:
        return  # deleted, or now a member (provision_member takes over)
    placed = repo.assignment_of(session, owner.id)
    if placed is None:
        return  # placement pending: place_account provisions once it succeeds
    cluster_id = placed.hopsworks_cluster_id
    cluster = service.get_cluster(session, cluster_id)
    with _client(session, ctx, cluster_id) as client:
        first, last = split_name(owner.name, owner.email)
        hw_user = client.create_user(owner.email, first, last, OWNER_MAX_PROJECTS)
        repo.save_hopsworks_user(session, owner.id, hw_user.username, cluster_id, hw_user.id)
        project = _create_account_project(
            client, project_name_for(owner.id), hw_user, f"hopsplane account {owner.id}",
            project_services(cluster.metadata),
        )
        with _as_user(client, hw_user.username) as as_owner:
            as_owner.project_ready(project.id)  # ProjectNotReady: retried with backoff
        repo.save_project(session, owner.id, project.id, project.name, project.namespace)
        if _suspended(owner):
            client.set_user_active(hw_user.id, False)
    for member in repo.members_of(session, owner.id):  # members who joined before the project
        tasks.enqueue_member_provisioning(session, member.id, owner.id)
    log.info("owner provisioned", account=owner.id, cluster=str(cluster_id),
             username=hw_user.username, project=project.name, namespace=project.namespace)


def _create_account_project(
    client: HopsworksApi, name: str, owner: HopsworksUser, description: str,
    services: list[str],
) -> HopsworksProject:
    """The account's project, owned by ``owner``. An adopted Hopsworks user may own
    projects already, and Hopsworks refuses a project beyond the owner's quota
    (NUM_PROJECTS_LIMIT_REACHED, ProjectController.java:602-607): their quota is raised by
    what they own for the call, then set back to one (their other projects are found by
    the cluster audit as stray projects: billed to the account and stopped with it)."""
    try:
        return client.create_project(name, owner.username, description, services)
    except HopsworksRejected as exc:
        if exc.error_code != NUM_PROJECTS_LIMIT_REACHED:
            raise
    owned = sum(1 for p in client.list_projects() if p.creator == owner.username)
    client.set_max_projects(owner.id, OWNER_MAX_PROJECTS + owned)
    try:
        return client.create_project(name, owner.username, description, services)
    finally:
        client.set_max_projects(owner.id, OWNER_MAX_PROJECTS)


def _provision_member(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """A Hopsworks user for the member, added to the owner's project (or the project the
    owner assigned) as a Data scientist by the owner (``POST /project/{id}/projectMembers``
    with the owner's token); a member moved to another project leaves the previous one."""
    member = repo.get_user(session, str(args["user_id"]))
    if member is None or member.account_owner_id is None:
        return
    owner = repo.get_user(session, member.account_owner_id)
    placed = repo.assignment_of(session, member.account_owner_id)
    if owner is None or placed is None:
        raise Unavailable(f"account {member.account_owner_id} has no cluster yet")
    cluster_id = placed.hopsworks_cluster_id
    project_id = (args.get("project_id") or member.hopsworks_project_id
                  or owner.hopsworks_project_id)
    with _client(session, ctx, cluster_id) as client:
        first, last = split_name(member.name, member.email)
        hw_user = client.create_user(member.email, first, last, MEMBER_MAX_PROJECTS)
        repo.save_hopsworks_user(session, member.id, hw_user.username, cluster_id, hw_user.id)
        if _suspended(owner):
            client.set_user_active(hw_user.id, False)
        if project_id is not None and owner.hopsworks_username:
            before = (member.metadata_ or {}).get(MEMBER_OF_KEY)
            with _as_user(client, owner.hopsworks_username) as as_owner:
                as_owner.add_member(int(project_id), member.email)
                if before and str(before) != str(project_id):  # moved to another project
                    as_owner.remove_member(int(before), member.email)
            repo.merge_user_metadata(session, member.id, {MEMBER_OF_KEY: str(project_id)})
            service.clear_operator_error(session, cluster_id)
    log.info("member provisioned", account=owner.id, member=member.id, project=project_id)


def _sync_account_status(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Deactivate (suspended) or reactivate every provisioned Hopsworks user of an account;
    a member stopped by their budget stays deactivated while the account is active.
    After a deactivation, queue the next step of the suspension: stopping the account's
    running workloads, and each over-budget member's own (a resumption restarts nothing:
    the owner sees what was stopped). Deactivation alone stops nothing: Hopsworks checks
    a user's status at login only, not on the tokens of an open session."""
    owner = repo.get_user(session, str(args["user_id"]))
    if owner is None:
        return
    placed = repo.assignment_of(session, owner.id)
    if placed is None:
        return
    active = not _suspended(owner)
    cluster = str(placed.hopsworks_cluster_id)
    on_cluster = [u for u in _hopsworks_users(session, owner) if _on(u, cluster)]
    with _client(session, ctx, placed.hopsworks_cluster_id) as client:
        for user in on_cluster:  # a member over an enforced budget stays off
            client.set_user_active(int(user.metadata_["hopsworks_user_id"]),
                                   active and not _budget_stopped(user))
    suspension = (owner.metadata_ or {}).get(SUSPENSION_KEY)
    if not active and suspension and owner.hopsworks_project_id is not None:
        tasks.enqueue_workload_stop(session, owner.id, str(suspension))
    if owner.hopsworks_project_id is not None:  # members over budget: their work too
        for user in on_cluster:
            if user.account_owner_id is not None and _budget_stopped(user):
                stop = budget_stop_id(user.id, user.metadata_)
                tasks.enqueue_workload_stop(session, owner.id, stop, member_id=user.id)
    log.info("account status synced", account=owner.id, active=active, users=len(on_cluster))


def place_account(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Retry the placement of an account that found no capacity at sign-up. A user who has
    joined a team since (or is gone) has no account to place: the job is done at once,
    instead of failing on "not an owner" for each of its 1,000 attempts."""
    owner_id = str(args["user_id"])
    user = repo.get_user(session, owner_id)
    if user is None or user.account_owner_id is not None:
        log.info("placement dropped: no account to place", user=owner_id,
                 member_of=user.account_owner_id if user else None)
        return
    service.assign_account(session, owner_id)


def _remove_member(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Remove a former member from the owner's project, as the owner."""
    project_id = args.get("project_id")
    owner = repo.get_user(session, str(args["owner_id"]))
    placed = repo.assignment_of(session, str(args["owner_id"]))
    if project_id is None or placed is None or owner is None or not owner.hopsworks_username:
        return
    with (
        _client(session, ctx, placed.hopsworks_cluster_id) as client,
        _as_user(client, owner.hopsworks_username) as as_owner,
    ):
        as_owner.remove_member(int(project_id), str(args["email"]))
    member = repo.get_user(session, str(args["user_id"]))
    if member is not None and member.account_owner_id != owner.id:
        repo.merge_user_metadata(session, member.id, {MEMBER_OF_KEY: None})


def reconcile(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Periodic: re-enqueue provisioning for every user whose Hopsworks side is incomplete
    (catches jobs that ran out of attempts during a long outage), and queue the audit of
    every cluster with accounts (project quotas, stray projects: see
    :func:`hopsplane.clusters.enforcement.audit_cluster`)."""
    for cluster_id in repo.clusters_to_audit(session):
        tasks.enqueue_cluster_audit(session, str(cluster_id))
    for user_id, is_member in repo.unprovisioned(session):
        if is_member:
            user = repo.get_user(session, user_id)
            tasks.enqueue_member_provisioning(
                session, user_id, user.account_owner_id if user else None
            )
        else:
            tasks.enqueue_owner_provisioning(session, user_id)


def _hopsworks_users(session: Session, owner: User) -> list[User]:
    return [owner, *repo.members_of(session, owner.id)]


def _on(user: User, cluster: str) -> bool:
    metadata = user.metadata_ or {}
    return metadata.get(CLUSTER_KEY) == cluster and metadata.get("hopsworks_user_id") is not None


provision_owner = _operator_errors(_provision_owner)
sync_account_status = _operator_errors(_sync_account_status)
provision_member = _operator_errors(_provision_member)
remove_member = _operator_errors(_remove_member)

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
