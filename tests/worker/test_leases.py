"""Running jobs hold a lease, not an open transaction: a dead worker's job runs again
elsewhere once its lease expires, a run that lost its lease commits nothing, a long job
leaves no transaction open, and idle workers are woken by NOTIFY."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.billing.rules import today_utc
from hopsplane.billing.tasks import BILLING_TASK
from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.worker import service
from hopsplane.worker.runner import Worker
from hopsplane.worker.schemas import JobContext
from tests.factories import make_user, post, upsert_usage


def _job(db: Database, job_id: int) -> Any:
    with db.transaction() as s:
        return s.execute(text(
            "SELECT status, attempts, lease_owner, lease_expires_at, last_error "
            "FROM hopsplane.jobs WHERE id = :id"), {"id": job_id}).one()


def _claim_and_die(db: Database, lease_seconds: float) -> int:
    """What a worker that claims a job and is then killed leaves behind."""
    with db.transaction() as s:
        job = service._claim(s, datetime.now(UTC), "dead-worker:1:x", lease_seconds)
    assert job is not None
    return job.id


def _idle_in_transaction(db: Database) -> int:
    with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' "
            # a lease renewal between its UPDATE and COMMIT is idle for microseconds
            "AND state_change < now() - interval '0.3 seconds'").fetchone()
    assert row is not None
    return int(row[0])


def test_a_dead_workers_job_runs_again_once_its_lease_expires(fresh_db: Database) -> None:
    runs: list[int] = []
    with fresh_db.transaction() as s:
        job_id = service.enqueue(s, "record", {"n": 1})
    assert _claim_and_die(fresh_db, lease_seconds=1.0) == job_id
    handlers = {"record": lambda s, a, c: runs.append(c.attempt)}
    assert service.run_one(fresh_db, handlers, JobContext()) is None  # the lease still holds
    assert _job(fresh_db, job_id).status == "running"
    time.sleep(1.1)
    assert service.run_one(fresh_db, handlers, JobContext()) is not None
    job = _job(fresh_db, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("done", 2, None)
    assert runs == [2]  # the second attempt ran it; the dead one counted as the first


def test_a_job_whose_worker_died_on_its_last_attempt_fails(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        job_id = service.enqueue(s, "record", max_attempts=1)
    _claim_and_die(fresh_db, lease_seconds=1.0)
    time.sleep(1.1)
    assert service.run_one(fresh_db, {"record": lambda s, a, c: None}, JobContext()) is None
    job = _job(fresh_db, job_id)
    assert job.status == "failed" and "lease expired" in job.last_error


def test_a_run_that_lost_its_lease_commits_nothing(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        job_id = service.enqueue(s, "slow")

    def slow(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        session.execute(text("CREATE TABLE lost_marker (x int)"))
        # meanwhile its lease expired and another worker took the job over
        with fresh_db.transaction() as other:
            other.execute(text("UPDATE hopsplane.jobs SET lease_owner = 'someone-else' "
                               "WHERE id = :id"), {"id": job_id})

    service.run_one(fresh_db, {"slow": slow}, JobContext())
    job = _job(fresh_db, job_id)
    assert (job.status, job.lease_owner) == ("running", "someone-else")  # untouched
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT to_regclass('public.lost_marker')")).scalar() is None


def test_a_long_job_keeps_its_lease_and_no_transaction_open(fresh_url: str,
                                                            settings: Settings) -> None:
    db, other = Database(fresh_url, settings), Database(fresh_url, settings)
    with db.transaction() as s:
        job_id = service.enqueue(s, "long")
    seen: dict[str, Any] = {}
    started = threading.Event()

    def long(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        time.sleep(2.0)  # four lease lengths: only the heartbeat keeps the job ours

    t = threading.Thread(target=lambda: service.run_one(
        db, {"long": long}, JobContext(), lease_seconds=0.5))
    t.start()
    assert started.wait(10)
    time.sleep(0.8)
    seen["idle"] = _idle_in_transaction(db)
    seen["stolen"] = service.run_one(other, {"long": long}, JobContext(), lease_seconds=0.5)
    t.join()
    assert seen["idle"] == 0, "a worker sat in an open transaction while its job ran"
    assert seen["stolen"] is None, "another worker took a job whose lease was renewed"
    job = _job(db, job_id)
    assert (job.status, job.attempts) == ("done", 1)
    db.dispose()
    other.dispose()


def test_a_billing_run_whose_worker_died_after_charging_charges_nothing_twice(
    fresh_db: Database, settings: Settings
) -> None:
    """The billing job commits its own batches: a worker killed after they committed but
    before it recorded the job done leaves a job that runs again, and charges nothing."""
    with fresh_db.transaction() as s:
        acct = make_user(s)
        post(s, acct, "grant", "100.00")
        upsert_usage(s, acct, today_utc(), "123450")  # $12.35
        job_id = service.enqueue(s, BILLING_TASK)
    context = JobContext(schedule.services(settings, fresh_db))
    handler = schedule.handlers()[BILLING_TASK]
    _claim_and_die(fresh_db, lease_seconds=1.0)
    with fresh_db.transaction() as s:  # the dead worker's run got as far as its batches
        handler(s, {}, context)
    time.sleep(1.1)
    assert service.run_one(fresh_db, schedule.handlers(), context) is not None
    assert _job(fresh_db, job_id).status == "done"
    with fresh_db.transaction() as s:
        assert credits.balance(s, acct) == Decimal("87.65")
        assert s.execute(text(
            "SELECT count(*) FROM credits_ledger WHERE type = 'usage'")).scalar_one() == 1
        assert credits.verify(s).ok


def test_an_idle_worker_is_woken_by_a_new_job(fresh_db: Database) -> None:
    ran = threading.Event()
    worker = Worker(fresh_db, {"ping": lambda s, a, c: ran.set()}, poll_interval=60)
    stop = threading.Event()
    threads = [threading.Thread(target=worker.listen, args=(stop,)),
               threading.Thread(target=worker.run_forever, args=(stop,))]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # the loop found nothing and waits (60 s poll); LISTEN is up
        started = time.monotonic()
        with fresh_db.transaction() as s:
            service.enqueue(s, "ping")
        assert ran.wait(10), "the worker was not woken"
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        worker.wake.set()
        for t in threads:
            t.join(timeout=10)
