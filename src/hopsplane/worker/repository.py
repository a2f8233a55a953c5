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

# One claimable job: due and queued, or running with an expired lease (its worker died or
# lost touch). Rows another claimer is looking at are skipped; the claim transaction is
# short (this statement, the lock-key check, the UPDATE below, COMMIT).
_CANDIDATE = text(
    """
    SELECT id, task, args, lock_key, attempts, max_attempts, status
    FROM hopsplane.jobs
    WHERE ((status = 'queued' AND run_at <= :now)
           OR (status = 'running' AND lease_expires_at < clock_timestamp()))
      AND NOT (id = ANY(:skip))
    ORDER BY run_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
    """
)

# Claimers of one lock key take turns (until the claim commits), so the check below sees
# a job of the key that another claim just started.
_TRY_KEY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('job:' || :key, 0))")

_KEY_BUSY = text(
    "SELECT EXISTS (SELECT 1 FROM hopsplane.jobs WHERE lock_key = :key "
    "AND status = 'running' AND id <> :id)"
)

_START = text(
    """
    UPDATE hopsplane.jobs
    SET status = 'running', attempts = attempts + 1, lease_owner = :owner,
        lease_expires_at = clock_timestamp() + make_interval(secs => :lease),
        started_at = clock_timestamp()
    WHERE id = :id
    RETURNING attempts
    """
)

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


def candidate(session: Session, now: datetime, skip: list[int]) -> tuple[ClaimedJob, str] | None:
    """The next claimable job (locked until the caller's transaction ends) and its status."""
    row = session.execute(_CANDIDATE, {"now": now, "skip": skip}).one_or_none()
    if row is None:
        return None
    job = ClaimedJob(
        id=row.id,
        task=row.task,
        args=dict(row.args),
        lock_key=row.lock_key,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )
    return job, str(row.status)


def try_lock_key(session: Session, key: str) -> bool:
    return bool(session.execute(_TRY_KEY_LOCK, {"key": key}).scalar_one())


def key_busy(session: Session, key: str, job_id: int) -> bool:
    return bool(session.execute(_KEY_BUSY, {"key": key, "id": job_id}).scalar_one())


def start(session: Session, job_id: int, owner: str, lease_seconds: float) -> int:
    """Mark the job running under a new lease; returns its attempts, this one included."""
    return int(session.execute(
        _START, {"id": job_id, "owner": owner, "lease": lease_seconds}
    ).scalar_one())


def renew(session: Session, leases: dict[int, str], lease_seconds: float) -> set[int]:
    """Extend the leases still held; returns the ids of those that were."""
    if not leases:
        return set()
    rows = session.execute(
        text(
            "UPDATE hopsplane.jobs SET lease_expires_at = clock_timestamp() "
            "+ make_interval(secs => :lease) FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:owners AS text[])) AS held(id, owner) WHERE jobs.id = held.id "
            "AND jobs.lease_owner = held.owner AND jobs.status = 'running' RETURNING jobs.id"
        ),
        {"lease": lease_seconds, "ids": list(leases), "owners": list(leases.values())},
    )
    return {int(r[0]) for r in rows}


_HELD = "WHERE id = :id AND status = 'running' AND lease_owner = :owner"
_END_LEASE = "lease_owner = NULL, lease_expires_at = NULL"


def mark_done(session: Session, job_id: int, owner: str) -> bool:
    """False when the lease was lost (the job is someone else's now): nothing changed."""
    result = session.execute(
        text(
            f"UPDATE hopsplane.jobs SET status = 'done', {_END_LEASE}, finished_at = now(), "
            f"last_error = NULL {_HELD}"
        ),
        {"id": job_id, "owner": owner},
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def mark_retry(
    session: Session, job_id: int, owner: str, run_at: datetime, error: str
) -> bool:
    result = session.execute(
        text(
            f"UPDATE hopsplane.jobs SET status = 'queued', {_END_LEASE}, run_at = :run_at, "
            f"last_error = :error {_HELD}"
        ),
        {"id": job_id, "owner": owner, "run_at": run_at, "error": error},
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def mark_failed(session: Session, job_id: int, owner: str | None, error: str) -> bool:
    """Fail a job this claim holds (``owner``), or one still locked by the caller's claim
    transaction (``owner`` None: an unknown task, a job out of attempts)."""
    held = _HELD if owner is not None else "WHERE id = :id"
    result = session.execute(
        text(
            f"UPDATE hopsplane.jobs SET status = 'failed', {_END_LEASE}, finished_at = now(), "
            f"last_error = :error {held}"
        ),
        {"id": job_id, "owner": owner, "error": error},
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


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


def oldest_due(session: Session) -> datetime | None:
    """When the longest-waiting queued job was due (None: nothing waits)."""
    value = session.execute(text(
        "SELECT min(run_at) FROM hopsplane.jobs WHERE status = 'queued'")).scalar()
    return value if isinstance(value, datetime) else None
