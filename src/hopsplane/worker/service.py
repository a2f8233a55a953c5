"""Use cases of the job queue. ``enqueue`` takes the caller's session (jobs are enqueued in
the caller's transaction, so a rollback takes them back and a commit makes them visible to
the workers at once); ``run_one`` owns one transaction per job."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.worker import repository as repo
from hopsplane.worker.rules import backoff, describe_error, periodic_key
from hopsplane.worker.schemas import (
    ClaimedJob,
    Handler,
    JobContext,
    JobCounts,
    PeriodicTask,
    Task,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_ATTEMPTS = 20
PERIODIC_MAX_ATTEMPTS = 3

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def enqueue(
    session: Session,
    task: str,
    args: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    lock_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    run_at: datetime | None = None,
) -> int:
    """Queue ``task``. With an idempotency key a repeat returns the first job's id.

    ``lock_key`` serialises jobs that share it (two workers never run them at once), for
    jobs that converge an external system on the database's current state."""
    if not task:
        raise Invalid("a job needs a task name")
    if max_attempts < 1:
        raise Invalid("max_attempts must be at least 1")
    job_id = repo.insert(
        session,
        task=task,
        args=dict(args or {}),
        lock_key=lock_key,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        run_at=run_at,
    )
    if job_id is None:
        assert idempotency_key is not None
        existing = repo.find_id_by_key(session, idempotency_key)
        assert existing is not None  # jobs are never deleted
        return existing
    return job_id


def enqueue_unless_queued(
    session: Session,
    task: str,
    args: Mapping[str, Any],
    *,
    lock_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> int | None:
    """Queue ``task`` unless the same task with the same args is already waiting."""
    return repo.insert_unless_queued(
        session, task=task, args=dict(args), lock_key=lock_key, max_attempts=max_attempts
    )


def schedule_periodic(session: Session, tasks: list[PeriodicTask], now: datetime) -> int:
    """Enqueue every periodic task whose current slot has no job yet; any number of
    workers may call this at once, each slot gets exactly one job."""
    created = 0
    for p in tasks:
        key = periodic_key(p.name, now, p.every)
        before = repo.find_id_by_key(session, key)
        if before is None:
            enqueue(
                session,
                p.task,
                p.args,
                idempotency_key=key,
                max_attempts=PERIODIC_MAX_ATTEMPTS,
                lock_key=f"periodic:{p.name}",
            )
            created += 1
    return created


def run_one(
    db: Database,
    handlers: Mapping[str, Handler],
    context: JobContext,
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Claim one due job and run it in its own transaction. Returns the job, or None when
    nothing is due. The job's row stays locked while it runs, so no other worker can take
    it; if this process dies, the transaction ends and the job is due again."""
    now = now or utcnow()
    with db.transaction() as session:
        job = _claim(session, now)
        if job is None:
            return None
        handler = handlers.get(job.task)
        if handler is None:
            repo.mark_failed(session, job.id, f"unknown task {job.task!r}")
            log.error("job failed: unknown task", job=job.id, task=job.task)
            return job
        context.job_id, context.attempt = job.id, job.attempts + 1
        try:
            with session.begin_nested():
                handler(session, job.args, context)
        except Exception as exc:
            error = describe_error(exc)
            if job.attempts + 1 >= job.max_attempts:
                repo.mark_failed(session, job.id, error)
                log.error(
                    "job failed for good",
                    job=job.id,
                    task=job.task,
                    attempts=job.attempts + 1,
                    error=error,
                )
            else:
                retry_at = now + backoff(job.attempts + 1)
                repo.mark_retry(session, job.id, retry_at, error)
                log.warning(
                    "job failed, will retry",
                    job=job.id,
                    task=job.task,
                    attempt=job.attempts + 1,
                    retry_at=retry_at.isoformat(),
                    error=error,
                )
        else:
            repo.mark_done(session, job.id)
            log.info("job done", job=job.id, task=job.task, attempt=job.attempts + 1)
        return job


def _claim(session: Session, now: datetime) -> ClaimedJob | None:
    skipped: list[int] = []
    while True:
        job = repo.claim(session, now, skipped)
        if job is None:
            return None
        if job.lock_key is None or repo.try_lock_key(session, job.lock_key):
            return job
        skipped.append(job.id)  # a job with the same lock key runs elsewhere right now


def counts(session: Session) -> list[JobCounts]:
    return repo.counts(session)


def retry_failed(session: Session, task: str | None = None) -> int:
    return repo.requeue_failed(session, task)


PRUNE_TASK = "worker.prune"
KEEP_DONE = 14  # days


def prune(session: Session, args: dict[str, Any], context: JobContext) -> None:
    """Periodic: delete jobs that finished successfully more than ``keep_days`` ago (failed
    ones stay until someone looks at them)."""
    days = int(args.get("keep_days", KEEP_DONE))
    deleted = repo.delete_finished(session, utcnow() - timedelta(days=days))
    log.info("pruned finished jobs", deleted=deleted, older_than_days=days)


TASKS: tuple[Task, ...] = (Task(PRUNE_TASK, prune, every=timedelta(days=1), slot="prune-jobs"),)
"""The queue's own job: pruning finished jobs once a day."""
