"""The credits domain's jobs: expiring promotional credit and telling owners before, and
announcing a change of standing that its posting could not announce."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.credits import expiry, service
from hopsplane.worker.schemas import JobContext, Task

EXPIRE_TASK = "credits.expire"
EXPIRE_EVERY = timedelta(minutes=15)
ANNOUNCE_TASK = "credits.announce_standing"  # queued by the standing statement (SQL)


def expire_credits(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Post the expiries that are due (a batch per run; idempotent, keyed by the grant)
    and publish the 7-day notices (once per grant; each is a queued notice job).
    Suspensions an expiry causes are announced through the worker's hooks right away."""
    services = ctx.services
    expiry.expire_due(session, hooks=services.hooks, thresholds=services.settings.thresholds)
    expiry.notify_expiring(session)


def announce_standing(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Tell the hooks of a suspension or resumption that a posting without hooks caused
    (the hot path, a Stripe webhook's purchase, the legacy import). In the job's
    transaction, so exactly once. Announced as the standing is NOW: when a later posting
    already reversed it (a suspension followed by a top-up), the stale announcement is
    skipped, and the reversal's own job announces the present."""
    account, kind = str(args["account"]), str(args["kind"])
    suspended = service.is_suspended(session, account)
    hooks = ctx.services.hooks
    if kind == "suspended" and suspended:
        hooks.account_suspended(session, account)
    elif kind == "resumed" and not suspended:
        hooks.account_resumed(session, account)


TASKS: tuple[Task, ...] = (
    Task(EXPIRE_TASK, expire_credits, every=EXPIRE_EVERY, slot="credits-expire"),
    Task(ANNOUNCE_TASK, announce_standing),
)
"""Every 15 minutes: an expiry lands at most a quarter of an hour late, and usage never
draws an expired grant in the meantime (the draw rule looks at the entry's time)."""
