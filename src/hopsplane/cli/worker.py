"""hopsplane worker: run scheduled and retried jobs."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from hopsplane.audit.actors import Actor, bind_sessions
from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    database,
    friendly,
    load_settings,
    print_list,
    transaction,
)
from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.worker import service
from hopsplane.worker.runner import Worker

app = typer.Typer(
    help="Run the job queue (Hopsworks provisioning, periodic usage collection and billing). "
    "Start as many workers as you like, on any machines: each job runs once.",
    invoke_without_command=True,
)


@app.callback()
@friendly
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option(help="Schedule due periodic jobs, run every due job, then exit.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Jobs run at the same time by this process.")
    ] = 1,
) -> None:
    """Run jobs until interrupted (SIGINT/SIGTERM finish the running job, then stop)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    with database(settings) as db:
        # the worker's decisions are the system's (each job binds its own name), not the
        # operator's who started it
        bind_sessions(db.sessions, Actor.system("worker"))
        with db.transaction() as session:  # fail fast (a message) on a database it cannot use
            service.counts(session)
        worker = build_worker(settings, db)
        if once:
            worker.tick()
            console.print(f"ran {worker.run_pending()} job(s)")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        threads = start_job_loop(worker, stop, concurrency)
        console.print(f"worker running ({concurrency} thread(s)); Ctrl-C stops it")
        wait_for_job_loop(worker, stop, threads)


def build_worker(settings: Settings, db: Database) -> Worker:
    """A worker of every domain's tasks, as the settings configure it."""
    return Worker(
        db,
        schedule.handlers(),
        schedule.periodic_tasks(settings),
        services=schedule.services(settings, db),
        poll_interval=settings.worker_poll_interval_seconds,
        lease_seconds=settings.worker_lease_seconds,
    )


def start_job_loop(
    worker: Worker, stop: threading.Event, concurrency: int
) -> list[threading.Thread]:
    """The job loop of `hopsplane worker` (also run by `hopsplane dev`): ``concurrency``
    threads running due jobs and one listening for new ones, until ``stop`` is set."""
    threads = [
        threading.Thread(target=worker.run_forever, args=(stop,), name=f"worker-{i}")
        for i in range(concurrency)
    ]
    threads.append(threading.Thread(target=worker.listen, args=(stop,), name="listen"))
    for t in threads:
        t.start()
    return threads


def wait_for_job_loop(worker: Worker, stop: threading.Event,
                      threads: list[threading.Thread]) -> None:
    """Until every thread of the loop has ended: after ``stop``, each finishes its job."""
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.5)
        if stop.is_set():
            worker.wake.set()  # an idle loop sees the stop at once


_STATUS = (
    Col("task", lambda r: r.task, whole=True),
    Col("status", lambda r: r.status),
    Col("jobs", lambda r: r.count, justify="right"),
    Col("next run (UTC)",
        lambda r: r.next_run_at.strftime("%Y-%m-%d %H:%M:%S") if r.next_run_at else None),
    Col("last error", lambda r: r.last_error),  # wrapped on a terminal, whole when piped
)


@app.command()
@friendly
def status(as_json: JsonOpt = False) -> None:
    """Jobs by task and state, with the next due time and the last error."""
    with transaction(load_settings()) as session:
        rows = service.counts(session)
    print_list(rows, _STATUS, as_json=as_json)


@app.command("retry-failed")
@friendly
def retry_failed(
    task: Annotated[str | None, typer.Option(help="Only jobs of this task.")] = None,
) -> None:
    """Queue every failed job again (after fixing what made it fail)."""
    with transaction(load_settings()) as session:
        n = service.retry_failed(session, task)
    console.print(f"{n} job(s) queued again")
