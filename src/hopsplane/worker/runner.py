"""The worker loop: schedule periodic slots, run due jobs, sleep, repeat."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import structlog

from hopsplane.db.engine import Database
from hopsplane.worker import service
from hopsplane.worker.schemas import Handler, JobContext, PeriodicTask
from hopsplane.worker.service import Clock, utcnow

log = structlog.get_logger(__name__)


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        periodic: list[PeriodicTask] | None = None,
        *,
        services: dict[str, object] | None = None,
        poll_interval: float = 2.0,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.periodic = list(periodic or [])
        self.services = dict(services or {})
        self.poll_interval = poll_interval
        self.clock = clock
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
        context = JobContext(services=self.services)
        while limit is None or ran < limit:
            if service.run_one(self.db, self.handlers, context, self.clock()) is None:
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
            except Exception:  # a lost database connection must not kill the worker
                log.exception("worker loop error; retrying after the poll interval")
                ran = 0
            if ran == 0:
                stop.wait(self.poll_interval)
        log.info("worker stopped")
