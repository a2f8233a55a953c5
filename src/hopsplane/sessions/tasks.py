"""The sessions domain's job: forgetting sessions that ended a week ago."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.sessions import service
from hopsplane.worker.schemas import JobContext, Task

PRUNE_TASK = "sessions.prune"


def prune_sessions(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    service.prune(session)


TASKS: tuple[Task, ...] = (
    Task(PRUNE_TASK, prune_sessions, every=timedelta(days=1), slot="prune-sessions"),
)
