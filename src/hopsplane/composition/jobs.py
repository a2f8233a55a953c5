"""What `hopsplane worker` runs: the task handlers and the periodic schedule.

This is the one registration point for scheduled work. A domain adds:

- a handler ``def run(session: Session, args: dict[str, Any], ctx: JobContext) -> None``
  (runs inside the job's transaction, never commits, raises to be retried) to
  :func:`handlers`, under a dotted task name;
- if it is periodic, a :class:`PeriodicTask` to :func:`periodic_tasks` (one job per slot,
  whatever the number of workers);
- any client it needs, built from settings, to :func:`services` (``ctx.services[...]``).

Registered: Hopsworks provisioning (retried jobs), cluster reconciliation, usage collection
from every cluster's Prometheus (hourly, for yesterday UTC: a day is complete only once it
has ended, and re-collecting it changes nothing unless Prometheus changed its answer), the
billing run (every 15 minutes: it is idempotent and charges only what is new), job pruning.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.billing.rules import today_utc
from hopsplane.billing.run import run_billing
from hopsplane.clusters import provisioning
from hopsplane.clusters import tasks as cluster_tasks
from hopsplane.clusters.hooks import build_account_hooks
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.integrations.email import build_mailer
from hopsplane.integrations.hopsworks import build_client_factory
from hopsplane.usage.service import collect_all
from hopsplane.worker import service as queue
from hopsplane.worker.schemas import Handler, JobContext, PeriodicTask

RECONCILE_EVERY = timedelta(minutes=15)
BILLING_EVERY = timedelta(minutes=15)
BILLING_TASK = "billing.run"
USAGE_EVERY = timedelta(hours=1)
USAGE_TASK = "usage.collect_all"


def collect_usage_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Collect yesterday's (UTC) usage from every cluster's Prometheus and fold it in; one
    transaction per cluster, a failing cluster is logged and retried by the next slot."""
    collect_all(ctx.services["database"], today_utc() - timedelta(days=1))


def run_billing_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Charge every uncharged usage through today (UTC). Batches commit on their own
    transactions; a failed account is logged and retried by the next slot."""
    settings: Settings = ctx.services["settings"]
    run_billing(
        ctx.services["database"],
        today_utc(),
        hooks=build_account_hooks(settings),
        mailer=build_mailer(settings),
        thresholds=settings.thresholds,
        batch_size=settings.billing_batch_size,
        workers=1,
        public_url=settings.public_url,
    )


def handlers() -> dict[str, Handler]:
    registry: dict[str, Handler] = {
        queue.PRUNE_TASK: queue.prune,
        BILLING_TASK: run_billing_job,
        USAGE_TASK: collect_usage_job,
    }
    registry.update(provisioning.HANDLERS)
    return registry


def periodic_tasks() -> list[PeriodicTask]:
    return [
        PeriodicTask("clusters-reconcile", RECONCILE_EVERY, cluster_tasks.RECONCILE),
        PeriodicTask("prune-jobs", timedelta(days=1), queue.PRUNE_TASK),
        PeriodicTask("usage-collect", USAGE_EVERY, USAGE_TASK),
        PeriodicTask("billing-run", BILLING_EVERY, BILLING_TASK),
    ]


def services(settings: Settings, database: Database) -> dict[str, Any]:
    return {
        "settings": settings,
        "database": database,
        "box": SecretBox(settings.effective_encryption_keys),
        "hopsworks": build_client_factory(settings),
    }
