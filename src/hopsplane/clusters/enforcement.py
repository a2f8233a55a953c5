"""Enforcement on Hopsworks: what a suspended account (or a member over an enforced budget)
runs is stopped, checked to have stopped, and kept stopped; and no user of an account can
run compute in a project hopsplane does not bill.

- ``clusters.stop_workloads``: acting as each project's owner, list the running job
  executions (``expand=user``, to know who started each) and model deployments, stop
  them, then list them again: only what no longer runs counts as stopped (the execution
  stop answers 202 whatever happened, and kills nothing while an execution has no appId);
  what still runs, or could not be listed or stopped, is tried again by a follow-up round
  after a backoff. Acting as each user, stop their Jupyter server (a user who is not a
  member of the project has none there). A cluster without the data-science profile has
  no serving at all (400 120012): that is "no deployments", not a failure. For a member
  over their budget, only what that member started: their executions, their Jupyter and
  the deployments whose creator (a display name "First Last" in Hopsworks) is theirs.
- ``clusters.sweep`` (every minute): Hopsworks checks a user's status at login and API-key
  use only, so a deactivated user's open session keeps working and can restart what was
  stopped. While the account stays suspended (or the member over budget), their workloads
  are stopped again every ``Settings.suspension_sweep_minutes`` and recorded.
- ``clusters.audit_cluster`` (queued by the periodic reconcile): corrects the project
  quota of the cluster's users (owners may own 1 project, members none; users made before
  the quota existed have Hopsworks' default of 5) and records the projects an account's
  users own besides the account's ("stray" projects), so that their usage is billed to the
  account's owner and suspensions stop them too.

Sources (file and line) for each call: docs/hopsworks.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.clusters import repository as repo
from hopsplane.clusters import service, tasks
from hopsplane.clusters.provisioning import (
    MAX_STOP_ROUNDS,
    SWEEP_TICK,
    _as_user,
    _budget_stopped,
    _client,
    _hopsworks_users,
    _now,
    _on,
    _operator_errors,
    _suspended,
    _sweep_every,
)
from hopsplane.clusters.rules import (
    MEMBER_MAX_PROJECTS,
    OWNER_MAX_PROJECTS,
    STRAY_PROJECTS_KEY,
    SUSPENSION_KEY,
    SWEPT_AT_KEY,
    budget_stop_id,
    split_name,
)
from hopsplane.db.models import User
from hopsplane.integrations.hopsworks import (
    HopsworksProject,
    HopsworksRejected,
    HopsworksUnavailable,
    OwnerSession,
    Workload,
)
from hopsplane.integrations.hopsworks.client import OWNER_TOKEN_SECONDS
from hopsplane.worker.rules import backoff
from hopsplane.worker.schemas import JobContext, Task

log = structlog.get_logger(__name__)


def display_name(user: User) -> str:
    """The name Hopsworks shows for a user hopsplane registered ("First Last")."""
    first, last = split_name(user.name, user.email)
    return f"{first} {last}"


def _stop_workloads(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Stop what the suspended account (or the member over budget, ``member_id``) runs in
    its projects, check it stopped, record it, and queue a follow-up round for the rest."""
    owner = repo.get_user(session, str(args["user_id"]))
    placed = repo.assignment_of(session, str(args["user_id"]))
    if owner is None or placed is None or owner.hopsworks_project_id is None:
        return
    if not owner.hopsworks_username:
        return
    member: User | None = None
    if args.get("member_id") is not None:
        member = repo.get_user(session, str(args["member_id"]))
        if (member is None or member.account_owner_id != owner.id or not _budget_stopped(member)
                or budget_stop_id(member.id, member.metadata_) != str(args["suspension"])):
            return  # restored, gone, or stopped again (that stop has its own job)
    elif not _suspended(owner) or (owner.metadata_ or {}).get(SUSPENSION_KEY) != args["suspension"]:
        return  # resumed (or suspended again: that suspension has its own job)
    now = _now(ctx)
    record_as = str(args.get("record_as") or (
        f"{args['suspension']}/sweep/{now:%Y%m%dT%H%M%S}" if args.get("sweep")
        else args["suspension"]))
    cluster = placed.hopsworks_cluster_id
    everyone = [u for u in _hopsworks_users(session, owner)
                if _on(u, str(cluster)) and u.hopsworks_username]
    if member is not None and member.id not in {u.id for u in everyone}:
        return  # no Hopsworks user on this cluster: nothing of theirs can run
    targets = [member] if member is not None else everyone
    names = {str(u.hopsworks_username) for u in targets}
    creators = _creator_names(targets, everyone)
    stopped: list[tuple[int, Workload]] = []
    left: list[str] = []

    def attempt(what: str, call: Callable[..., Any], *call_args: object) -> Any:
        try:
            return call(*call_args)
        except (HopsworksRejected, HopsworksUnavailable) as exc:
            left.append(f"{what}: {exc.message}")
            return None

    def mine(found: list[Workload]) -> list[Workload]:
        if member is None:
            return found
        return [w for w in found if (w.hopsworks_user in names if w.kind == "job_execution"
                                     else w.creator_name in creators)]

    with _client(session, ctx, cluster) as client:
        for project, acting in _projects(owner, everyone):
            with _as_user(client, acting) as as_owner:
                _stop_round(as_owner, project, attempt, mine, stopped, left)
            for user in targets:
                name = str(user.hopsworks_username)
                with _as_user(client, name) as as_user:
                    if attempt(f"Jupyter of {name}", as_user.stop_own_jupyter, project):
                        # one per user in the account's project; elsewhere also per project
                        ref = name if project == owner.hopsworks_project_id else \
                            f"{name}@{project}"
                        stopped.append((project, Workload("jupyter", ref, f"Jupyter of {name}",
                                                          name)))
    repo.record_stopped(session, [
        {"account_owner_id": owner.id, "cluster_id": cluster, "project_id": project,
         "suspension": record_as, "kind": w.kind, "ref": w.ref, "name": _shown(w),
         "hopsworks_user": w.hopsworks_user}
        for project, w in stopped
    ])
    repo.merge_user_metadata(session, (member or owner).id, {SWEPT_AT_KEY: now.isoformat()})
    service.clear_operator_error(session, cluster)
    round_ = int(args.get("round", 1))
    if left:
        if round_ >= MAX_STOP_ROUNDS:
            raise HopsworksUnavailable("could not stop: " + "; ".join(left))
        tasks.enqueue_workload_stop(
            session, owner.id, str(args["suspension"]), round_ + 1,
            run_at=now + backoff(round_), member_id=member.id if member else None,
            record_as=record_as, sweep=bool(args.get("sweep")))
        log.warning("some workloads still run; a follow-up job tries again",
                    account=owner.id, member=member.id if member else None, left=left)
    log.info("workloads stopped", account=owner.id, member=member.id if member else None,
             stopped=len(stopped), sweep=bool(args.get("sweep")))


def _stop_round(
    as_owner: OwnerSession, project: int, attempt: Callable[..., Any],
    mine: Callable[[list[Workload]], list[Workload]],
    stopped: list[tuple[int, Workload]], left: list[str],
) -> None:
    """Stop the project's running executions and deployments (those ``mine`` keeps), then
    list again: what no longer runs is stopped, what still runs is left for a later round."""
    executions = mine(attempt(f"jobs of project {project}",
                              as_owner.running_executions, project) or [])
    deployments = mine(attempt(f"deployments of project {project}",
                               as_owner.running_deployments, project) or [])
    for w in executions:
        attempt(f"{w.kind} {w.name}", as_owner.stop_execution, project, str(w.job), w.ref)
    for w in deployments:
        attempt(f"{w.kind} {w.name}", as_owner.stop_deployment, project, w.ref)
    for tried, relist in ((executions, as_owner.running_executions),
                          (deployments, as_owner.running_deployments)):
        if not tried:
            continue
        still = attempt(f"running workloads of project {project}", relist, project)
        if still is None:
            continue  # not known whether they stopped: the follow-up round looks again
        running = {w.ref for w in still}
        for w in tried:
            if w.ref in running:
                left.append(f"{w.kind} {w.name}: still running after the stop")
            else:
                stopped.append((project, w))


def _projects(owner: User, everyone: list[User]) -> list[tuple[int, str]]:
    """(project id, username of its owner) of every project where the account runs work:
    the account's project, then the stray projects its users own (see audit_cluster)."""
    usernames = {str(u.hopsworks_username) for u in everyone}
    found = [(int(owner.hopsworks_project_id or 0), str(owner.hopsworks_username))]
    for stray in (owner.metadata_ or {}).get(STRAY_PROJECTS_KEY) or []:
        if isinstance(stray, dict) and stray.get("creator") in usernames:
            found.append((int(stray["id"]), str(stray["creator"])))
    return found


def _creator_names(targets: list[User], everyone: list[User]) -> set[str]:
    """Display names that identify a target's deployments: Hopsworks names a deployment's
    creator only by "First Last", so a name two users of the account share identifies
    neither (their deployments are left alone and the account's owner can act)."""
    counts: dict[str, int] = {}
    for u in everyone:
        counts[display_name(u)] = counts.get(display_name(u), 0) + 1
    return {display_name(u) for u in targets if counts[display_name(u)] == 1}


def _shown(w: Workload) -> str:
    if w.kind == "deployment" and w.creator_name:
        return f"{w.name} (created by {w.creator_name})"
    return w.name


def sweep(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Periodic: queue the stop of everything that runs again for each suspended account
    and each member over an enforced budget whose last stop is older than
    ``Settings.suspension_sweep_minutes``."""
    now, every = _now(ctx), _sweep_every(ctx)
    queued = 0
    for owner_id, member_id, stop in repo.accounts_to_sweep(session):
        who = repo.get_user(session, member_id or owner_id)
        if who is None:
            continue
        last = _parse_time((who.metadata_ or {}).get(SWEPT_AT_KEY))
        if last is not None and now - last < every:
            continue
        repo.merge_user_metadata(session, who.id, {SWEPT_AT_KEY: now.isoformat()})
        tasks.enqueue_workload_stop(session, owner_id, stop, member_id=member_id, sweep=True)
        queued += 1
    if queued:
        log.info("suspended workloads swept", accounts=queued)


def _parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def audit_cluster(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Correct the project quota of every user hopsplane made on the cluster and record
    each account's stray projects (``PUT /admin/users/{id}`` where ``maxNumProjects``
    differs; ``GET /admin/projects?expand=creator``)."""
    cluster_id = uuid.UUID(str(args["cluster_id"]))
    users = repo.users_on_cluster(session, cluster_id)
    if not users:
        return
    corrected = 0
    expired = _now(ctx) - timedelta(seconds=OWNER_TOKEN_SECONDS + 60)
    with _client(session, ctx, cluster_id) as client:
        for key_name in repo.signing_keys_older_than(session, cluster_id, expired):
            try:  # a key whose DELETE failed when its work ended; its token has expired
                client.delete_signing_key(key_name)
            except (HopsworksRejected, HopsworksUnavailable) as exc:
                log.warning("signing key still on the cluster", key_name=key_name,
                            error=type(exc).__name__)
                break
            repo.forget_signing_key(session, key_name)
        listed = {u.id: u for u in client.list_users()}
        for user in users:
            found = listed.get(int((user.metadata_ or {})["hopsworks_user_id"]))
            wanted = MEMBER_MAX_PROJECTS if user.account_owner_id else OWNER_MAX_PROJECTS
            if found is not None and found.max_projects != wanted:
                client.set_max_projects(found.id, wanted)
                corrected += 1
        projects = client.list_projects()
    _reprovision_vanished(session, users, projects)
    strays = service.find_stray_projects(session, cluster_id, projects)
    for user in users:
        if user.account_owner_id is None:
            mine = [s.model_dump() for s in strays.get(user.id, [])]
            if mine != ((user.metadata_ or {}).get(STRAY_PROJECTS_KEY) or []):
                repo.merge_user_metadata(session, user.id, {STRAY_PROJECTS_KEY: mine})
    if corrected or strays:
        log.warning("cluster audited", cluster=str(cluster_id), quotas_corrected=corrected,
                    accounts_with_stray_projects=len(strays))


def _reprovision_vanished(
    session: Session, users: list[User], projects: list[HopsworksProject],
) -> None:
    """An account whose saved project is no longer on the cluster (deleted by hand, or a
    creation that Hopsworks cleaned up after it failed) is provisioned again: the project
    is forgotten, so the owner's provisioning makes it anew and members join the new one."""
    existing = {p.id for p in projects}
    for user in users:
        if user.account_owner_id is None and user.hopsworks_project_id is not None \
                and user.hopsworks_project_id not in existing:
            log.warning("hopsworks project gone; provisioning it again", account=user.id,
                        project=user.hopsworks_project_id)
            repo.forget_project(session, user.id)
            tasks.enqueue_owner_provisioning(session, user.id)


stop_workloads = _operator_errors(_stop_workloads)

TASKS: tuple[Task, ...] = (
    Task(tasks.STOP_WORKLOADS, stop_workloads),
    Task(tasks.SWEEP, sweep, every=SWEEP_TICK, slot="clusters-sweep"),
    Task(tasks.AUDIT_CLUSTER, audit_cluster),
)
"""The enforcement jobs; registered next to :data:`provisioning.TASKS` by the composition
root."""
