"""The webhooks domain's job: one attempt at one delivery (queued by the publish point)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.webhooks import service
from hopsplane.worker.schemas import JobContext, Task

PRUNE_TASK = "webhooks.prune"


def deliver_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Needs the worker's ``database``, ``box`` and ``webhook_sender`` services. The job's
    session is not used: the POST happens with no transaction open."""
    sender = ctx.services.webhook_sender
    if sender is None:
        raise RuntimeError("this worker was built without a webhook sender")
    service.deliver(ctx.services.database, ctx.services.box,
                    sender, uuid.UUID(str(args["delivery"])),
                    now=ctx.clock(), replay=bool(args.get("replay")))


def prune_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Daily: forget finished deliveries older than :data:`service.KEEP_DELIVERIES` (the
    log shows recent ones; an event is never published again that late)."""
    service.prune(session, ctx.clock())


TASKS: tuple[Task, ...] = (
    Task(service.DELIVER_TASK, deliver_job),
    Task(PRUNE_TASK, prune_job, every=timedelta(days=1), slot="webhooks-prune"),
)
