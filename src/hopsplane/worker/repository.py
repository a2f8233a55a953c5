"""SQL of the job queue (hopsplane.jobs). The only module that reads or writes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam

from hopsplane.worker.schemas import ClaimedJob, JobCounts

_INSERT = text(
    """
    INSERT INTO hopsplane.jobs (task, args, lock_key, idempotency_key, max_attempts, run_at)
    VALUES (:task, :args, :lock_key, :key, :max_attempts, COALESCE(:run_at, now()))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
).bindparams(bindparam("args", type_=JSONB))

_INSERT_UNLESS_QUEUED = text(
    """
    INSERT INTO hopsplane.jobs (task, args, lock_key, max_attempts)
    SELECT :task, :args, :lock_key, :max_attempts
    WHERE NOT EXISTS (SELECT 1 FROM hopsplane.jobs
                      WHERE status = 'queued' AND task = :task AND args = :args)
    RETURNING id
    """
).bindparams(bindparam("args", type_=JSONB))

# One due job, skipping those another worker holds. The row lock is held for the whole
# run (the job's transaction), so a crashed worker's job simply becomes claimable again.
_CLAIM = text(
    """
    SELECT id, task, args, lock_key, attempts, max_attempts
    FROM hopsplane.jobs
    WHERE status = 'queued' AND run_at <= :now AND NOT (id = ANY(:skip))
    ORDER BY run_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
    """
)

_TRY_KEY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('job:' || :key, 0))")


def insert(
    session: Session,
    *,
    task: str,
    args: dict[str, Any],
    lock_key: str | None,
    idempotency_key: str | None,
    max_attempts: int,
    run_at: datetime | None,
) -> int | None:
    """The new job's id, or None when the idempotency key was already used."""
    row = session.execute(
        _INSERT,
        {
            "task": task,
            "args": args,
            "lock_key": lock_key,
            "key": idempotency_key,
            "max_attempts": max_attempts,
            "run_at": run_at,
        },
    ).scalar_one_or_none()
    return None if row is None else int(row)


def insert_unless_queued(
    session: Session, *, task: str, args: dict[str, Any], lock_key: str | None, max_attempts: int
) -> int | None:
    row = session.execute(
        _INSERT_UNLESS_QUEUED,
        {"task": task, "args": args, "lock_key": lock_key, "max_attempts": max_attempts},
    ).scalar_one_or_none()
    return None if row is None else int(row)


def find_id_by_key(session: Session, key: str) -> int | None:
    value = session.execute(
        text("SELECT id FROM hopsplane.jobs WHERE idempotency_key = :k"), {"k": key}
    ).scalar_one_or_none()
    return None if value is None else int(value)


def claim(session: Session, now: datetime, skip: list[int]) -> ClaimedJob | None:
    row = session.execute(_CLAIM, {"now": now, "skip": skip}).one_or_none()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id,
        task=row.task,
        args=dict(row.args),
        lock_key=row.lock_key,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )


def try_lock_key(session: Session, key: str) -> bool:
    return bool(session.execute(_TRY_KEY_LOCK, {"key": key}).scalar_one())


def mark_done(session: Session, job_id: int) -> None:
    session.execute(
        text(
            "UPDATE hopsplane.jobs SET status = 'done', attempts = attempts + 1, "
            "finished_at = now(), last_error = NULL WHERE id = :id"
        ),
        {"id": job_id},
    )


def mark_retry(session: Session, job_id: int, run_at: datetime, error: str) -> None:
    session.execute(
        text(
            "UPDATE hopsplane.jobs SET attempts = attempts + 1, run_at = :run_at, "
            "last_error = :error WHERE id = :id"
        ),
        {"id": job_id, "run_at": run_at, "error": error},
    )


def mark_failed(session: Session, job_id: int, error: str) -> None:
    session.execute(
        text(
            "UPDATE hopsplane.jobs SET status = 'failed', attempts = attempts + 1, "
            "finished_at = now(), last_error = :error WHERE id = :id"
        ),
        {"id": job_id, "error": error},
    )


def requeue_failed(session: Session, task: str | None) -> int:
    result = session.execute(
        text(
            "UPDATE hopsplane.jobs SET status = 'queued', attempts = 0, finished_at = NULL, "
            "run_at = now() WHERE status = 'failed' AND (CAST(:task AS text) IS NULL "
            "OR task = :task)"
        ),
        {"task": task},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def counts(session: Session) -> list[JobCounts]:
    rows = session.execute(
        text(
            "SELECT task, status, count(*) AS n, min(run_at) AS next_run_at, "
            "max(last_error) FILTER (WHERE status <> 'done') AS last_error "
            "FROM hopsplane.jobs GROUP BY task, status ORDER BY task, status"
        )
    )
    return [JobCounts(r.task, r.status, int(r.n), r.next_run_at, r.last_error) for r in rows]


def delete_finished(session: Session, before: datetime) -> int:
    result = session.execute(
        text("DELETE FROM hopsplane.jobs WHERE status = 'done' AND finished_at < :before"),
        {"before": before},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
