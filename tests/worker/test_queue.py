"""The PostgreSQL job queue: idempotent enqueue, retries with backoff, exactly-once runs
across concurrent workers, one job per periodic slot, per-key serialisation."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.worker import service
from hopsplane.worker.rules import backoff, periodic_key, slot_start
from hopsplane.worker.runner import Worker
from hopsplane.worker.schemas import JobContext, PeriodicTask


def _jobs(db: Database) -> list[Any]:
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT id, task, status, attempts, run_at, last_error FROM hopsplane.jobs ORDER BY id"
        )))


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(i).total_seconds() for i in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30) == timedelta(hours=1)


def test_slots_are_aligned_and_keys_stable() -> None:
    t = datetime(2026, 11, 25, 3, 41, 7, tzinfo=UTC)
    assert slot_start(t, timedelta(hours=1)) == datetime(2026, 11, 25, 3, tzinfo=UTC)
    assert periodic_key("x", t, timedelta(hours=1)) == periodic_key("x", t + timedelta(minutes=10), timedelta(hours=1))
    assert periodic_key("x", t, timedelta(hours=1)) != periodic_key("x", t + timedelta(hours=1), timedelta(hours=1))


def test_enqueue_is_idempotent_by_key_and_rolls_back_with_the_caller(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = service.enqueue(s, "t", {"n": 1}, idempotency_key="k1")
        b = service.enqueue(s, "t", {"n": 1}, idempotency_key="k1")
    assert a == b
    with pytest.raises(RuntimeError), fresh_db.transaction() as s:
        service.enqueue(s, "t", {"n": 2})
        raise RuntimeError("caller failed")
    assert len(_jobs(fresh_db)) == 1


def test_a_failing_job_is_retried_with_backoff_then_fails_for_good(fresh_db: Database) -> None:
    calls: list[int] = []

    def flaky(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        session.execute(text("CREATE TABLE IF NOT EXISTS public_marker (x int)"))  # rolled back
        raise RuntimeError("boom")

    with fresh_db.transaction() as s:
        service.enqueue(s, "flaky", max_attempts=3)
    now = datetime.now(UTC)
    ctx = JobContext()
    assert service.run_one(fresh_db, {"flaky": flaky}, ctx, now) is not None
    job = _jobs(fresh_db)[0]
    assert (job.status, job.attempts, job.last_error) == ("queued", 1, "RuntimeError: boom")
    assert job.run_at >= now + timedelta(seconds=5)
    assert service.run_one(fresh_db, {"flaky": flaky}, ctx, now) is None  # not due yet
    service.run_one(fresh_db, {"flaky": flaky}, ctx, now + timedelta(minutes=1))
    service.run_one(fresh_db, {"flaky": flaky}, ctx, now + timedelta(minutes=5))
    job = _jobs(fresh_db)[0]
    assert (job.status, job.attempts) == ("failed", 3)
    assert calls == [1, 2, 3]
    with fresh_db.transaction() as s:
        exists = s.execute(text("SELECT to_regclass('public.public_marker')")).scalar()
        assert exists is None
        assert service.retry_failed(s) == 1
    assert _jobs(fresh_db)[0].status == "queued"


def test_unknown_tasks_fail_instead_of_looping(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        service.enqueue(s, "nobody.handles.this")
    service.run_one(fresh_db, {}, JobContext())
    assert _jobs(fresh_db)[0].status == "failed"


def test_two_workers_never_run_a_job_twice(fresh_url: str, settings: Any) -> None:
    runs: list[int] = []
    lock = threading.Lock()

    def record(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        session.execute(text("SELECT pg_sleep(0.002)"))
        with lock:
            runs.append(int(args["n"]))

    seeder = Database(fresh_url, settings)
    with seeder.transaction() as s:
        for n in range(200):
            service.enqueue(s, "record", {"n": n})
    seeder.dispose()

    dbs = [Database(fresh_url, settings) for _ in range(2)]
    workers = [Worker(db, {"record": record}) for db in dbs]
    per_worker = [0, 0]
    barrier = threading.Barrier(2)

    def go(i: int) -> None:
        barrier.wait()
        per_worker[i] = workers[i].run_pending()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.dispose()
    assert sorted(runs) == list(range(200))  # every job once, none twice
    assert sum(per_worker) == 200
    assert all(n > 0 for n in per_worker), per_worker  # both really worked


def test_periodic_slots_get_one_job_whatever_the_number_of_workers(
    fresh_url: str, settings: Any
) -> None:
    now = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
    task = PeriodicTask("collect", timedelta(hours=1), "noop")
    dbs = [Database(fresh_url, settings) for _ in range(4)]
    workers = [Worker(db, {"noop": lambda s, a, c: None}, [task], clock=lambda: now) for db in dbs]
    barrier = threading.Barrier(4)

    def go(w: Worker) -> None:
        barrier.wait()
        w.tick()

    threads = [threading.Thread(target=go, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers[0].clock = lambda: now + timedelta(minutes=20)
    workers[0].tick()  # same slot
    assert len(_jobs(dbs[0])) == 1
    workers[0].clock = lambda: now + timedelta(hours=1)
    workers[0].tick()  # next slot
    assert len(_jobs(dbs[0])) == 2
    for db in dbs:
        db.dispose()


def test_jobs_sharing_a_lock_key_never_run_at_the_same_time(fresh_url: str, settings: Any) -> None:
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        order.append(f"start {args['n']}")
        inside.set()
        release.wait(10)
        order.append(f"end {args['n']}")

    def fast(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
        order.append(f"run {args['n']}")

    db1, db2 = Database(fresh_url, settings), Database(fresh_url, settings)
    with db1.transaction() as s:
        service.enqueue(s, "slow", {"n": 1}, lock_key="account:a")
        service.enqueue(s, "fast", {"n": 2}, lock_key="account:a")
        service.enqueue(s, "fast", {"n": 3}, lock_key="account:b")
    handlers = {"slow": slow, "fast": fast}
    t = threading.Thread(target=lambda: service.run_one(db1, handlers, JobContext()))
    t.start()
    assert inside.wait(10)
    # The second worker skips job 2 (same key, running elsewhere) and takes job 3.
    assert service.run_one(db2, handlers, JobContext()) is not None
    assert service.run_one(db2, handlers, JobContext()) is None
    release.set()
    t.join()
    assert service.run_one(db2, handlers, JobContext()) is not None
    assert order == ["start 1", "run 3", "end 1", "run 2"]
    db1.dispose()
    db2.dispose()


def test_prune_deletes_only_old_successful_jobs(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        s.execute(text(
            "INSERT INTO hopsplane.jobs (task, status, finished_at) VALUES "
            "('old', 'done', now() - interval '20 days'), "
            "('recent', 'done', now() - interval '1 day'), "
            "('failed', 'failed', now() - interval '30 days'), ('queued', 'queued', NULL)"))
        service.prune(s, {}, JobContext())
    assert [j.task for j in _jobs(fresh_db)] == ["recent", "failed", "queued"]
