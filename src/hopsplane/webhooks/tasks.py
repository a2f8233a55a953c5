"""The webhooks domain's job: one attempt at one delivery (queued by the publish point)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.webhooks import service
from hopsplane.worker.schemas import JobContext, Task


def deliver_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Needs the worker's ``database``, ``box`` and ``webhook_sender`` services. The job's
    session is not used: the POST happens with no transaction open."""
    service.deliver(ctx.services["database"], ctx.services["box"],
                    ctx.services["webhook_sender"], uuid.UUID(str(args["delivery"])),
                    now=ctx.clock(), replay=bool(args.get("replay")))


TASKS: tuple[Task, ...] = (Task(service.DELIVER_TASK, deliver_job),)
