"""Names of the clusters domain's jobs and how they are enqueued (in the caller's
transaction). The handlers live in :mod:`hopsplane.clusters.provisioning`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hopsplane.worker.service import enqueue, enqueue_unless_queued

PROVISION_OWNER = "clusters.provision_owner"
PROVISION_MEMBER = "clusters.provision_member"
SYNC_ACCOUNT_STATUS = "clusters.sync_account_status"
PLACE_ACCOUNT = "clusters.place_account"
REMOVE_MEMBER = "clusters.remove_member"
RECONCILE = "clusters.reconcile"
STOP_WORKLOADS = "clusters.stop_workloads"
SWEEP = "clusters.sweep"
AUDIT_CLUSTER = "clusters.audit_cluster"


def account_lock(account_id: str) -> str:
    """Jobs of one account never run at the same time (they converge one account's
    Hopsworks users on the database's state, in the order the workers pick them up)."""
    return f"account:{account_id}"


def enqueue_owner_provisioning(session: Session, account_id: str) -> None:
    enqueue_unless_queued(
        session, PROVISION_OWNER, {"user_id": account_id}, lock_key=account_lock(account_id)
    )


def enqueue_member_provisioning(
    session: Session, member_id: str, account_id: str | None = None, project_id: int | None = None
) -> None:
    args: dict[str, object] = {"user_id": member_id}
    if project_id is not None:
        args["project_id"] = project_id
    enqueue_unless_queued(
        session,
        PROVISION_MEMBER,
        args,
        lock_key=account_lock(account_id) if account_id else None,
    )


def enqueue_status_sync(session: Session, account_id: str) -> None:
    # Not deduplicated: each change of the desired state gets a job that reads the state
    # when it runs, and jobs of one account are serialised, so the last one wins.
    enqueue(session, SYNC_ACCOUNT_STATUS, {"user_id": account_id},
            lock_key=account_lock(account_id))


def enqueue_placement(session: Session, account_id: str) -> None:
    enqueue_unless_queued(
        session,
        PLACE_ACCOUNT,
        {"user_id": account_id},
        lock_key=account_lock(account_id),
        max_attempts=1000,
    )


def enqueue_member_removal(
    session: Session, member_id: str, account_id: str, email: str, project_id: int | None
) -> None:
    enqueue(
        session,
        REMOVE_MEMBER,
        {"user_id": member_id, "owner_id": account_id, "email": email, "project_id": project_id},
        lock_key=account_lock(account_id),
    )


def enqueue_workload_stop(
    session: Session, account_id: str, suspension: str, round_: int = 1,
    run_at: datetime | None = None, *, member_id: str | None = None,
    record_as: str | None = None, sweep: bool = False,
) -> None:
    """Second step of a suspension (or of a member's budget stop, ``member_id``): stop what
    the account (or the member) runs on its cluster. ``suspension`` is the id of the
    suspension or budget stop it belongs to; ``round_`` counts the follow-ups a partly
    failed stop queued; ``record_as`` is what a follow-up records its stops under (the
    first round's); ``sweep``: queued by the periodic sweep, not by the stop itself
    (see clusters.enforcement)."""
    args: dict[str, object] = {"user_id": account_id, "suspension": suspension, "round": round_}
    if member_id is not None:
        args["member_id"] = member_id
    if record_as is not None:
        args["record_as"] = record_as
    if sweep:
        args["sweep"] = True
    if round_ == 1 and run_at is None:  # a first round waiting already does the same work
        enqueue_unless_queued(session, STOP_WORKLOADS, args, lock_key=account_lock(account_id))
        return
    enqueue(session, STOP_WORKLOADS, args, lock_key=account_lock(account_id), run_at=run_at)


def enqueue_cluster_audit(session: Session, cluster_id: str) -> None:
    enqueue_unless_queued(session, AUDIT_CLUSTER, {"cluster_id": cluster_id})
