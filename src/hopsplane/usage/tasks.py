"""The usage domain's jobs: collecting usage from every cluster's Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.usage.service import collect_all
from hopsplane.worker.schemas import JobContext, Task

USAGE_EVERY = timedelta(hours=1)
USAGE_TASK = "usage.collect_all"


def collect_usage_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Collect yesterday's (UTC) usage from every cluster's Prometheus and fold it in; one
    transaction per cluster, a failing cluster is logged and retried by the next slot. A
    day is complete only once it has ended, and re-collecting it changes nothing unless
    Prometheus changed its answer."""
    collect_all(ctx.services["database"], datetime.now(UTC).date() - timedelta(days=1),
                prometheus_for=ctx.services.get("prometheus"))


TASKS: tuple[Task, ...] = (
    Task(USAGE_TASK, collect_usage_job, every=USAGE_EVERY, slot="usage-collect"),
)
"""Hourly, for yesterday UTC."""
