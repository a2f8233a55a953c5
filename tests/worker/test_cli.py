"""`hopsplane worker --once` / `status` / `retry-failed`, in-process."""

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.composition import jobs as schedule

runner = CliRunner()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.begin() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


# The usage collection queues the final collection of yesterday (due now: it runs too) and
# of today (due after midnight: it waits).
FINALISE = "usage.finalise_day"


def test_once_schedules_the_periodic_slot_and_runs_it(env: str) -> None:
    r = runner.invoke(app, ["worker", "--once"])
    ran = len(schedule.periodic_tasks()) + 1
    assert r.exit_code == 0 and f"ran {ran} job(s)" in r.output, r.output
    assert _rows(env, "SELECT task, status FROM hopsplane.jobs ORDER BY task, status") == sorted(
        [(p.task, "done") for p in schedule.periodic_tasks()]
        + [(FINALISE, "done"), (FINALISE, "queued")])
    again = runner.invoke(app, ["worker", "--once"])  # same slot: nothing new
    assert "ran 0 job(s)" in again.output
    assert runner.invoke(app, ["worker", "status"]).exit_code == 0


def test_retry_failed_requeues(env: str) -> None:
    _rows(env, "INSERT INTO hopsplane.jobs (task, status, finished_at) "
               "VALUES ('clusters.reconcile', 'failed', now()) RETURNING id")
    r = runner.invoke(app, ["worker", "retry-failed"])
    assert r.exit_code == 0 and "1 job(s) queued again" in r.output
    assert _rows(env, "SELECT status FROM hopsplane.jobs") == [("queued",)]


@pytest.mark.slow  # worker processes racing
def test_two_worker_processes_run_each_job_once(env: str) -> None:
    """Two `hopsplane worker --once` processes drain one queue side by side."""
    import os
    import subprocess
    import sys

    _rows(env, "INSERT INTO hopsplane.jobs (task) SELECT 'clusters.reconcile' "
               "FROM generate_series(1, 300) RETURNING id")
    environ = {**os.environ, "HOPSPLANE_DATABASE_URL": env, "HOPSPLANE_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "hopsplane", "worker", "--once"], env=environ,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ran = [int(o.split("ran ")[1].split(" job")[0]) for o in outputs]
    # 300 queued jobs plus one job per periodic slot, which one of them created, plus the
    # final collection of yesterday that the usage collection queued (today's waits).
    expected = 300 + len(schedule.periodic_tasks()) + 1
    assert sum(ran) == expected, outputs
    assert _rows(env, "SELECT status, attempts, count(*) FROM hopsplane.jobs "
                      "GROUP BY status, attempts ORDER BY status") == [
        ("done", 1, expected), ("queued", 0, 1)]
