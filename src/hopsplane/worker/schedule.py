"""What `hopsplane worker` runs: the task handlers and the periodic schedule.

This is the one registration point for scheduled work. A domain adds:

- a handler ``def run(session: Session, args: dict[str, Any], ctx: JobContext) -> None``
  (runs inside the job's transaction, never commits, raises to be retried) to
  :func:`handlers`, under a dotted task name;
- if it is periodic, a :class:`PeriodicTask` to :func:`periodic_tasks` (one job per slot,
  whatever the number of workers);
- any client it needs, built from settings, to :func:`services` (``ctx.services[...]``).

Usage collection ("collect usage hourly") and the billing run are registered here at merge,
e.g. ``PeriodicTask("usage-collect", timedelta(hours=1), "usage.collect_all")`` with the
handler ``"usage.collect_all": lambda s, a, c: usage.service.collect_all(s, ...)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hopsplane.clusters import provisioning
from hopsplane.clusters import tasks as cluster_tasks
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.integrations.hopsworks import build_client_factory
from hopsplane.worker import service as queue
from hopsplane.worker.schemas import Handler, PeriodicTask

RECONCILE_EVERY = timedelta(minutes=15)


def handlers() -> dict[str, Handler]:
    registry: dict[str, Handler] = {queue.PRUNE_TASK: queue.prune}
    registry.update(provisioning.HANDLERS)
    return registry


def periodic_tasks() -> list[PeriodicTask]:
    return [
        PeriodicTask("clusters-reconcile", RECONCILE_EVERY, cluster_tasks.RECONCILE),
        PeriodicTask("prune-jobs", timedelta(days=1), queue.PRUNE_TASK),
    ]


def services(settings: Settings) -> dict[str, Any]:
    return {
        "settings": settings,
        "box": SecretBox(settings.effective_encryption_keys),
        "hopsworks": build_client_factory(settings),
    }
