"""The credits domain's job: expiring promotional credit and telling owners before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.credits import expiry
from hopsplane.worker.schemas import JobContext, Task

EXPIRE_TASK = "credits.expire"
EXPIRE_EVERY = timedelta(minutes=15)


def expire_credits(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Post the expiries that are due (a batch per run; idempotent, keyed by the grant)
    and record the 7-day notices (once per grant; the billing dispatcher mails them).
    Suspensions an expiry causes are announced through the worker's hooks right away."""
    services = ctx.services
    expiry.expire_due(session, hooks=services.hooks, thresholds=services.settings.thresholds)
    expiry.notify_expiring(session)


TASKS: tuple[Task, ...] = (
    Task(EXPIRE_TASK, expire_credits, every=EXPIRE_EVERY, slot="credits-expire"),
)
"""Every 15 minutes: an expiry lands at most a quarter of an hour late, and usage never
draws an expired grant in the meantime (the draw rule looks at the entry's time)."""
