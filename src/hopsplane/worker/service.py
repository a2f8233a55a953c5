"""Use cases of the job queue. ``enqueue`` takes the caller's session (jobs are enqueued in
the caller's transaction, so a rollback takes them back and a commit makes them visible to
the workers at once). ``run_one`` claims a job in a short transaction that gives it a
lease, renews the lease from a thread while the job runs, and records the outcome: no
transaction stays open longer than one unit of work (see docs/schema.md, the job queue)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.audit.actors import Actor
from hopsplane.audit.actors import bind as bind_actor
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


DEFAULT_LEASE_SECONDS = 60.0


class LeaseLost(Exception):
    """The job's lease expired and another worker claimed it: this run's writes are undone."""


def run_one(
    db: Database,
    handlers: Mapping[str, Handler],
    context: JobContext,
    now: datetime | None = None,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> ClaimedJob | None:
    """Claim one due job and run it. Returns the job, or None when nothing is due.

    The claim commits at once with the job marked ``running`` under a lease of
    ``lease_seconds``, renewed every third of it while the handler runs. The handler runs
    in a transaction of its own that also records success, but only while this claim
    still holds the lease: a job whose lease was lost (this worker stalled, another took
    the job over) commits nothing. The transaction begins at the handler's first
    statement, so a handler that opens its own transactions (the billing run) leaves none
    open while it works. If this process dies the lease runs out and the job is claimed
    again elsewhere; every job's effects are idempotent, so running it again is safe."""
    now = now or utcnow()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    with db.transaction() as session:
        job = _claim(session, now, owner, lease_seconds)
    if job is None:
        return None
    handler = handlers.get(job.task)
    if handler is None:
        with db.transaction() as session:
            repo.mark_failed(session, job.id, owner, f"unknown task {job.task!r}")
        log.error("job failed: unknown task", job=job.id, task=job.task)
        return job
    context.job_id, context.attempt = job.id, job.attempts + 1
    heartbeat = _Heartbeat(db, job.id, owner, lease_seconds)
    heartbeat.start()
    try:
        with db.transaction() as session:
            bind_actor(session, Actor.system(f"job:{job.task}"))  # whom the audit log names
            handler(session, job.args, context)
            if not repo.mark_done(session, job.id, owner):
                raise LeaseLost(f"job {job.id} lost its lease while it ran")
    except LeaseLost:
        log.warning("job lost its lease; its writes were rolled back", job=job.id,
                    task=job.task)
        return job
    except Exception as exc:
        _record_failure(db, job, owner, now, describe_error(exc))
        return job
    finally:
        heartbeat.stop()
    log.info("job done", job=job.id, task=job.task, attempt=job.attempts + 1)
    return job


def _record_failure(db: Database, job: ClaimedJob, owner: str, now: datetime, error: str) -> None:
    with db.transaction() as session:
        if job.attempts + 1 >= job.max_attempts:
            held = repo.mark_failed(session, job.id, owner, error)
            log.error("job failed for good", job=job.id, task=job.task,
                      attempts=job.attempts + 1, error=error, lease_held=held)
        else:
            retry_at = now + backoff(job.attempts + 1)
            held = repo.mark_retry(session, job.id, owner, retry_at, error)
            log.warning("job failed, will retry", job=job.id, task=job.task,
                        attempt=job.attempts + 1, retry_at=retry_at.isoformat(), error=error,
                        lease_held=held)


class _Heartbeat:
    """Renews one job's lease every third of its length, each time in a short transaction
    of its own, until stopped."""

    def __init__(self, db: Database, job_id: int, owner: str, lease_seconds: float) -> None:
        self._db, self._job, self._owner, self._lease = db, job_id, owner, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                with self._db.transaction() as session:
                    held = repo.renew(session, {self._job: self._owner}, self._lease)
            except Exception as exc:  # the database is away: try again next beat
                log.warning("lease renewal failed", job=self._job, error=describe_error(exc))
                continue
            if not held:
                log.warning("job lease lost", job=self._job)
                return


def _claim(session: Session, now: datetime, owner: str, lease_seconds: float) -> ClaimedJob | None:
    skipped: list[int] = []
    while True:
        found = repo.candidate(session, now, skipped)
        if found is None:
            return None
        job, status = found
        if job.lock_key is not None and not (
            repo.try_lock_key(session, job.lock_key)
            and not repo.key_busy(session, job.lock_key, job.id)
        ):
            skipped.append(job.id)  # a job with the same lock key runs elsewhere right now
            continue
        if status == "running" and job.attempts >= job.max_attempts:
            # its worker died on the last attempt: fail it rather than run it once more
            repo.mark_failed(session, job.id, None,
                             f"lease expired on attempt {job.attempts} of {job.max_attempts}")
            log.error("job failed for good: lease expired", job=job.id, task=job.task)
            skipped.append(job.id)
            continue
        if status == "running":
            log.warning("job lease expired; running it again", job=job.id, task=job.task)
        attempts = repo.start(session, job.id, owner, lease_seconds)
        return ClaimedJob(
            id=job.id, task=job.task, args=job.args, lock_key=job.lock_key,
            attempts=attempts - 1, max_attempts=job.max_attempts,
        )


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


STALLED_AFTER = timedelta(minutes=2)
"""A queued job due this long ago and still unclaimed means no worker is running (an idle
worker polls every few seconds)."""


def seems_stopped(session: Session, now: datetime | None = None) -> bool:
    """Whether the queue looks unattended: a job has waited :data:`STALLED_AFTER` past its
    time. What the console says when a customer's cluster never comes."""
    due = repo.oldest_due(session)
    return due is not None and due < (now or utcnow()) - STALLED_AFTER
