"""The billing domain's jobs: the periodic billing run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.billing.rules import today_utc
from hopsplane.billing.run import run_billing
from hopsplane.config import Settings
from hopsplane.worker.schemas import JobContext, Task

BILLING_EVERY = timedelta(minutes=15)
BILLING_TASK = "billing.run"


def run_billing_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Charge every uncharged usage through today (UTC). Batches commit on their own
    transactions; a failed account is logged and retried by the next slot. Needs the
    worker's ``settings``, ``database``, ``hooks`` and ``mailer`` services."""
    settings: Settings = ctx.services["settings"]
    run_billing(
        ctx.services["database"],
        today_utc(),
        hooks=ctx.services["hooks"],
        mailer=ctx.services["mailer"],
        thresholds=settings.thresholds,
        batch_size=settings.billing_batch_size,
        workers=1,
        public_url=settings.public_url,
        slice_days=settings.billing_slice_days,
    )


TASKS: tuple[Task, ...] = (
    Task(BILLING_TASK, run_billing_job, every=BILLING_EVERY, slot="billing-run"),
)
"""Every 15 minutes: the run is idempotent and charges only what is new."""
