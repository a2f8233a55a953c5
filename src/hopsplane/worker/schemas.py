"""Shapes of the job queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.hooks import AccountHooks
from hopsplane.integrations.email import Mailer
from hopsplane.integrations.hopsworks import HopsworksClientFactory
from hopsplane.integrations.prometheus import PrometheusFactory
from hopsplane.integrations.stripe.types import StripeGateway
from hopsplane.integrations.webhooks import WebhookSender


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


@dataclass(frozen=True, slots=True)
class JobServices:
    """The settings and clients jobs use, built once per worker by the composition root
    (``composition/jobs.py``) from the settings. Typed, so that a job reading a service
    that does not exist, or using one as what it is not, fails the type check rather than
    a run."""

    settings: Settings
    database: Database
    """For work in transactions of a job's own (a Stripe call between two, a signing key's
    record that must survive the job's rollback)."""
    box: SecretBox
    """Decrypts the clusters' stored credentials."""
    hopsworks: HopsworksClientFactory
    hooks: AccountHooks
    """The account hooks, with their listeners (``composition/hooks.py``)."""
    mailer: Mailer
    stripe: StripeGateway | None = None
    """None: Stripe is not configured (HOPSPLANE_STRIPE_SECRET_KEY)."""
    prometheus: PrometheusFactory | None = None
    """None: a plain client per URL, without a cluster's CA bundle or credentials."""
    usage_changed: Callable[[Session, list[str], date], None] | None = None
    """Told which accounts' usage a collection changed (billing's "charge them now")."""
    webhook_sender: WebhookSender | None = None
    """Delivers outbound webhooks (None: a worker that delivers none, the queue's tests)."""


@dataclass(slots=True)
class JobContext:
    """What a running job may use besides its session: built once per worker."""

    job_services: JobServices | None = None
    """None only for a worker that runs jobs using no service (the queue's own tests)."""
    job_id: int = 0
    attempt: int = 1
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The worker's clock: what a job takes as "now" (tests and benchmarks move it)."""

    @property
    def services(self) -> JobServices:
        if self.job_services is None:
            raise RuntimeError("this worker was started without services: build them with "
                               "hopsplane.composition.jobs.services(settings, database)")
        return self.job_services


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
