"""Shapes of the job queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    task: str
    args: dict[str, Any]
    lock_key: str | None
    attempts: int  # attempts before this one
    max_attempts: int


@dataclass(frozen=True, slots=True)
class JobCounts:
    task: str
    status: str
    count: int
    next_run_at: datetime | None
    last_error: str | None


@dataclass(slots=True)
class JobContext:
    """What a running job may use besides its session: built once per worker."""

    services: dict[str, Any] = field(default_factory=dict)
    job_id: int = 0
    attempt: int = 1
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The worker's clock: what a job takes as "now" (tests and benchmarks move it)."""


Handler = Callable[[Session, dict[str, Any], JobContext], None]
"""A job: runs inside the job's transaction (takes the session, never commits). Raising
rolls back what it wrote and schedules a retry; returning marks the job done."""


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    """A task enqueued once per ``every`` slot by whichever worker ticks first."""

    name: str
    every: timedelta
    task: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Task:
    """A kind of job, declared by the domain that owns it (in its ``tasks.py``): its dotted
    name, its handler and, for a periodic one, how often it runs (one job per slot, named
    ``slot``). The composition root collects every domain's tasks; the worker runs them."""

    name: str
    handler: Handler
    every: timedelta | None = None
    slot: str | None = None

    def periodic(self) -> PeriodicTask | None:
        if self.every is None:
            return None
        return PeriodicTask(self.slot or self.name, self.every, self.name)
