"""The real :class:`hopsplane.hooks.AccountHooks`: places accounts on clusters and queues
Hopsworks provisioning. Runs inside the caller's transaction and only writes rows (an
assignment, jobs, a flag): it never calls Hopsworks, so a rollback takes everything back
and a commit hands the work to `hopsplane worker`."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.orm import Session

from hopsplane.clusters import repository as repo
from hopsplane.clusters import service, tasks
from hopsplane.clusters.rules import (
    BUDGET_STOP_KEY,
    BUDGET_STOPPED_KEY,
    SUSPENDED_KEY,
    SUSPENSION_KEY,
)
from hopsplane.errors import Unavailable
from hopsplane.hooks import Listeners

log = structlog.get_logger(__name__)


class ClusterHooks:
    def __init__(self) -> None:
        self.listeners = Listeners()

    def account_created(self, session: Session, account_id: str) -> None:
        """Place the account now; with no capacity anywhere the sign-up still succeeds and
        a retried job places it when room appears (operators see the queued job)."""
        try:
            with session.begin_nested():
                service.assign_account(session, account_id)
        except Unavailable as exc:
            log.warning("account waits for cluster capacity", account=account_id, reason=str(exc))
            tasks.enqueue_placement(session, account_id)

    def member_joined(self, session: Session, member_id: str, account_id: str) -> None:
        tasks.enqueue_member_provisioning(session, member_id, account_id)

    def member_removed(self, session: Session, member_id: str, account_id: str) -> None:
        member = repo.get_user(session, member_id)
        owner = repo.get_user(session, account_id)
        if member is None:
            return
        project = member.hopsworks_project_id or (owner.hopsworks_project_id if owner else None)
        tasks.enqueue_member_removal(session, member_id, account_id, member.email, project)

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        """The member is added to ``project_id`` (carried by the job, so it does not matter
        whether the caller has written users.hopsworks_project_id yet)."""
        member = repo.get_user(session, member_id)
        tasks.enqueue_member_provisioning(
            session, member_id, member.account_owner_id if member else None, project_id
        )

    def account_closing(self, session: Session, account_id: str) -> None:
        repo.delete_assignment(session, account_id)

    def account_suspended(self, session: Session, account_id: str) -> None:
        """The suspension ladder: a status sync deactivates the Hopsworks users, then queues
        the stop of the account's workloads (recorded under this suspension's id)."""
        repo.merge_user_metadata(
            session, account_id, {SUSPENDED_KEY: True, SUSPENSION_KEY: str(uuid.uuid4())}
        )
        tasks.enqueue_status_sync(session, account_id)

    def account_resumed(self, session: Session, account_id: str) -> None:
        repo.merge_user_metadata(session, account_id, {SUSPENDED_KEY: False})
        tasks.enqueue_status_sync(session, account_id)

    def member_budget_exceeded(self, session: Session, member_id: str, account_id: str) -> None:
        """The same job as a suspension (the account's status sync), which deactivates the
        users that must not work (the flag makes it this member only), then stops what the
        member runs (recorded under this stop's id)."""
        repo.merge_user_metadata(
            session, member_id, {BUDGET_STOPPED_KEY: True, BUDGET_STOP_KEY: str(uuid.uuid4())}
        )
        tasks.enqueue_status_sync(session, account_id)

    def member_budget_restored(self, session: Session, member_id: str, account_id: str) -> None:
        repo.merge_user_metadata(session, member_id, {BUDGET_STOPPED_KEY: False})
        tasks.enqueue_status_sync(session, account_id)

