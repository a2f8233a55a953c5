"""The worker loop: schedule periodic slots, run due jobs, wait for a NOTIFY or the poll
interval, repeat."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import psycopg
import structlog

from hopsplane.db.engine import KEEPALIVES, Database, is_database_unavailable, libpq_conninfo
from hopsplane.worker import service
from hopsplane.worker.schemas import Handler, JobContext, JobServices, PeriodicTask
from hopsplane.worker.service import Clock, utcnow

log = structlog.get_logger(__name__)


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        periodic: list[PeriodicTask] | None = None,
        *,
        services: JobServices | None = None,
        poll_interval: float = 2.0,
        lease_seconds: float = service.DEFAULT_LEASE_SECONDS,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.periodic = list(periodic or [])
        self.services = services
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.wake = threading.Event()  # set by the LISTEN thread when jobs are inserted
        unknown = [p.task for p in self.periodic if p.task not in self.handlers]
        if unknown:
            raise ValueError(f"periodic tasks without a handler: {', '.join(unknown)}")

    def tick(self) -> int:
        """Enqueue the periodic slots that are due; returns how many were created."""
        if not self.periodic:
            return 0
        with self.db.transaction() as session:
            return service.schedule_periodic(session, self.periodic, self.clock())

    def run_pending(self, limit: int | None = None) -> int:
        """Run due jobs until none is left (or ``limit`` ran); returns how many ran."""
        ran = 0
        context = JobContext(job_services=self.services, clock=self.clock)
        while limit is None or ran < limit:
            job = service.run_one(
                self.db, self.handlers, context, self.clock(), lease_seconds=self.lease_seconds
            )
            if job is None:
                break
            ran += 1
        return ran

    def run_forever(self, stop: threading.Event) -> None:
        log.info(
            "worker started", tasks=sorted(self.handlers), periodic=[p.name for p in self.periodic]
        )
        while not stop.is_set():
            try:
                self.tick()
                ran = self.run_pending()
            except Exception as exc:  # a lost database connection must not kill the worker
                if is_database_unavailable(exc):
                    # expected for the ~20 s of a failover: one line, not a traceback a
                    # poll interval (the pool has dropped the old primary's connections)
                    log.warning("database unavailable; retrying after the poll interval",
                                error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                else:
                    log.exception("worker loop error; retrying after the poll interval")
                ran = 0
            if ran == 0:
                self.wake.wait(self.poll_interval)
                self.wake.clear()
        log.info("worker stopped")

    def listen(self, stop: threading.Event) -> None:
        """Wake the idle loops when jobs are inserted (revision 0011's trigger sends NOTIFY
        hopsplane_jobs at commit). Reconnects after errors; the loops poll meanwhile."""
        # libpq's own form: a multi-host URL with target_session_attrs=read-write lands on
        # the primary (NOTIFY is only sent there; a standby refuses LISTEN), and after a
        # failover the reconnect below finds the new one. Keepalives notice a primary that
        # vanished without closing the socket.
        conninfo = libpq_conninfo(self.db.engine.url.render_as_string(hide_password=False))
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5,
                                     application_name="hopsplane-worker-listen",
                                     **KEEPALIVES) as conn:
                    conn.execute("LISTEN hopsplane_jobs")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except psycopg.Error as exc:
                log.warning("job notifications unavailable; polling meanwhile",
                            error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                stop.wait(self.poll_interval)
