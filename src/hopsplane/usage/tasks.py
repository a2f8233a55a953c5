"""The usage domain's jobs: collecting usage from every cluster's Prometheus.

- ``usage.collect_all``, every ``HOPSPLANE_USAGE_COLLECT_INTERVAL_SECONDS`` (5 minutes):
  today (UTC) so far, from 00:00 to now. Each collection replaces the previous value of
  today's events, so today's rows always hold the latest; the accounts whose usage changed
  are handed to ``usage_changed`` (billing, wired by the composition root) in the same
  transaction, and so are charged within seconds, not at the next billing slot.
- ``usage.finalise_day``, once per day: the day that ended, whole, evaluated at its end,
  ``HOPSPLANE_USAGE_FINALISE_GRACE_SECONDS`` after midnight. Queued (under an idempotency
  key per day, so once) by every collection of the day before it is needed, and again by
  the first one of the next day in case no collection ran the day before.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.config import Settings
from hopsplane.errors import Unavailable
from hopsplane.usage.rules import day_end
from hopsplane.usage.service import NO_PROMETHEUS, collect_all
from hopsplane.worker.schemas import JobContext, Task
from hopsplane.worker.service import enqueue

log = structlog.get_logger(__name__)

USAGE_EVERY = timedelta(minutes=5)
"""The default of HOPSPLANE_USAGE_COLLECT_INTERVAL_SECONDS (see :func:`periodic_every`)."""
USAGE_TASK = "usage.collect_all"
FINALISE_TASK = "usage.finalise_day"
FINALISE_MAX_ATTEMPTS = 50  # a Prometheus outage after midnight: keep trying for a day


def collect_usage_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Collect today's (UTC) usage so far from every cluster's Prometheus and fold it in;
    one transaction per cluster, a failing cluster is logged and collected again at the
    next slot. Queues the final collection of yesterday and of today (once each)."""
    now = ctx.clock().astimezone(UTC)
    today = now.date()
    grace = timedelta(seconds=ctx.services.settings.usage_finalise_grace_seconds)
    yesterday = today - timedelta(days=1)
    enqueue_finalisation(session, yesterday, max(now, day_end(yesterday) + grace))
    enqueue_finalisation(session, today, day_end(today) + grace)
    collect_all(ctx.services.database, today, now=now,
                on_change=ctx.services.usage_changed, prometheus_for=ctx.services.prometheus)


def finalise_day_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Collect a day that has ended, whole (its 24 hours evaluated at its end): the last
    minutes before midnight, which no collection of the day saw, and any correction of what
    Prometheus extrapolated then. A cluster that fails makes the job retry (the others'
    collection is then repeated and changes nothing)."""
    day = date.fromisoformat(str(args["day"]))
    now = ctx.clock().astimezone(UTC)
    if now < day_end(day):
        raise Unavailable(f"{day.isoformat()} has not ended yet")
    results = collect_all(ctx.services.database, day, now=now,
                          on_change=ctx.services.usage_changed,
                          prometheus_for=ctx.services.prometheus)
    # a cluster without a Prometheus (its usage comes from an agent) is not a failure
    failed = [f"{r.cluster_id}: {r.error}" for r in results
              if r.error and r.error != NO_PROMETHEUS]
    if failed:
        raise Unavailable(f"the final collection of {day.isoformat()} failed on "
                          + "; ".join(failed))
    log.info("usage day finalised", day=day.isoformat(), clusters=len(results))


def enqueue_finalisation(session: Session, day: date, run_at: datetime) -> None:
    enqueue(session, FINALISE_TASK, {"day": day.isoformat()},
            idempotency_key=f"usage-finalise:{day.isoformat()}", run_at=run_at,
            max_attempts=FINALISE_MAX_ATTEMPTS)


def periodic_every(settings: Settings) -> dict[str, timedelta]:
    """The intervals the settings give this domain's periodic tasks."""
    return {USAGE_TASK: timedelta(seconds=settings.usage_collect_interval_seconds)}


TASKS: tuple[Task, ...] = (
    Task(USAGE_TASK, collect_usage_job, every=USAGE_EVERY, slot="usage-collect"),
    Task(FINALISE_TASK, finalise_day_job),
)
"""Today so far every few minutes; each day once, whole, after it ended."""
