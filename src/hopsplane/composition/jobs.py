"""What `hopsplane worker` runs: every domain's tasks, the periodic schedule they make and
the services their handlers use.

Each domain declares its jobs next to its code as typed :class:`~hopsplane.worker.schemas.Task`
values (``TASKS`` in its ``tasks.py``, or the module that holds the handlers); this module
only collects them, and builds the clients the handlers need from settings. A handler is
``def run(session: Session, args: dict[str, Any], ctx: JobContext) -> None`` (runs inside
the job's transaction, never commits, raises to be retried) and reaches what it needs
through ``ctx.services``, the typed :class:`~hopsplane.worker.schemas.JobServices` built
here once per worker; a periodic task gets one job per slot, whatever the number of
workers. The worker package claims, leases and runs jobs
and knows no domain.

Registered: Hopsworks provisioning (retried jobs) and cluster reconciliation (clusters),
usage collection from every cluster's Prometheus (usage), the billing run (billing), auto
top-up charges (payments), the notice of every account event (notices), the pruning of
ended browser sessions (sessions) and of finished jobs (the queue itself), the expiry of
promotional credit and the announcement of a suspension that its posting could not
announce (credits).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from hopsplane.billing import tasks as billing_tasks
from hopsplane.clusters import enforcement, provisioning
from hopsplane.clusters import service as clusters
from hopsplane.composition.hooks import build_account_hooks
from hopsplane.config import Settings
from hopsplane.credits import tasks as credits_tasks
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.integrations.email import build_mailer
from hopsplane.integrations.hopsworks import build_client_factory
from hopsplane.integrations.prometheus import (
    PrometheusFactory,
    PrometheusQuery,
    build_prometheus_client,
)
from hopsplane.integrations.stripe import build_stripe
from hopsplane.integrations.webhooks import HttpSender
from hopsplane.notices import service as notices
from hopsplane.payments import tasks as payment_tasks
from hopsplane.sessions import tasks as session_tasks
from hopsplane.usage import tasks as usage_tasks
from hopsplane.webhooks import tasks as webhook_tasks
from hopsplane.worker import service as queue
from hopsplane.worker.schemas import Handler, JobServices, PeriodicTask, Task


def tasks() -> tuple[Task, ...]:
    declared = (
        *queue.TASKS, *provisioning.TASKS, *enforcement.TASKS, *usage_tasks.TASKS,
        *billing_tasks.TASKS, *session_tasks.TASKS, *credits_tasks.TASKS, *payment_tasks.TASKS,
        *notices.TASKS, *webhook_tasks.TASKS,
    )
    names = [t.name for t in declared]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"tasks declared twice: {', '.join(duplicated)}")
    return declared


def handlers() -> dict[str, Handler]:
    return {t.name: t.handler for t in tasks()}


def periodic_tasks(settings: Settings | None = None) -> list[PeriodicTask]:
    """Every periodic task, at its declared interval or, with ``settings``, at the one the
    settings give it (how often usage is collected)."""
    every = usage_tasks.periodic_every(settings) if settings is not None else {}
    return [
        replace(p, every=every.get(t.name, p.every))
        for t in tasks() if (p := t.periodic()) is not None
    ]


def services(settings: Settings, database: Database) -> JobServices:
    """The services of one worker, handed to every job it runs (``ctx.services``)."""
    box = SecretBox(settings.effective_encryption_keys)
    return JobServices(
        settings=settings,
        database=database,
        box=box,
        hopsworks=build_client_factory(settings),
        prometheus=prometheus_factory(database, box),
        hooks=build_account_hooks(settings),
        mailer=build_mailer(settings),
        stripe=build_stripe(settings),
        # outbound webhooks: http:// only in development, addresses checked at send time
        webhook_sender=HttpSender(allow_http=settings.environment == "development"),
        # a usage collection that changed accounts' usage queues their billing at once
        usage_changed=billing_tasks.enqueue_account_billing,
    )


def prometheus_factory(database: Database, box: SecretBox) -> PrometheusFactory:
    """(cluster id, prometheus_url) -> a Prometheus client with the cluster's CA bundle and
    credentials (decrypted in a short transaction of its own, never logged)."""

    def build(cluster_id: uuid.UUID, url: str) -> PrometheusQuery:
        with database.transaction() as session:
            conn = clusters.prometheus_connection(session, box, cluster_id)
        if conn is None:
            return build_prometheus_client(url)
        basic = ((conn.username, conn.password.get_secret_value())
                 if conn.username and conn.password else None)
        return build_prometheus_client(
            conn.url, ca_bundle=conn.ca_bundle, basic_auth=basic,
            bearer_token=conn.bearer_token.get_secret_value() if conn.bearer_token else None)

    return build
