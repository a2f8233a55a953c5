"""Publishing account events, and sending their notices.

:func:`publish` is the one point where a cause (a posting that crosses a threshold, a
budget evaluation, an expiring grant, an auto top-up, a dispute) says what happened, in
the session of the transaction that caused it: the event's notice is queued as a job in
that transaction (``hopsplane.publish_event``), so a rollback takes it back and a commit
makes it due at once. The ledger's set-based statements call the same SQL function.

Exactly once, and where it stops: an event's key names the event, and the queue holds
one job per key, so however many transactions cause the same event (two evaluations of
a budget, a retried posting), one notice is queued. The worker sends it with no
transaction open and then marks the job done in the job's own transaction. SMTP cannot
take part in that transaction: a worker that dies after the mail server accepted the
message and before the job's commit sends it again when the lease runs out. That is
at-least-once delivery with a deduplication key: every repeat carries the same
Message-ID (:func:`hopsplane.notices.rules.message_id`). A mail server that refuses
(down, or no SMTP configured outside development) fails the job, and the queue retries it
with backoff.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.integrations.email import Mailer
from hopsplane.notices import repository as repo
from hopsplane.notices import rules
from hopsplane.notices.schemas import KINDS, AccountEvent
from hopsplane.worker.schemas import JobContext, Task

log = structlog.get_logger(__name__)

SEND_TASK = "notices.send"


def publish(session: Session, event: AccountEvent) -> int | None:
    """Queue the notice of ``event`` in the caller's transaction. Returns the job's id, or
    None when an event with this key was published before (by this transaction or a
    committed one; one still open holds the key until it ends)."""
    _check(event)
    return repo.publish(session, event.kind, event.account_id, event.key,
                        _jsonable(event.payload))


def publish_many(session: Session, events: Sequence[AccountEvent]) -> list[int | None]:
    """:func:`publish` for many events in one statement (a budget evaluation's)."""
    if not events:
        return []
    for event in events:
        _check(event)
    return repo.publish_many(session, [
        (e.kind, e.account_id, e.key, json.dumps(_jsonable(e.payload))) for e in events
    ])


def send(
    database: Database, mailer: Mailer, event: AccountEvent, *, public_url: str = "",
    currency: str = "USD",
) -> int:
    """Send the notice of one event: the recipients are read in a short transaction of
    its own, the emails are sent with none open. Returns how many were sent. A mailer
    that cannot send raises (``Unavailable``): the job is retried."""
    wanted = rules.recipients(event)
    if not wanted:
        return 0
    with database.transaction() as s:
        people = repo.people(s, wanted)
    emails = rules.emails_for(event, people, public_url=public_url, currency=currency)
    for message in emails:
        mailer.send(message)
    log.info("notice sent", kind=event.kind, account=event.account_id, emails=len(emails))
    return len(emails)


def send_notice(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """The job of one event's notice. It never uses the job's session, so the job's
    transaction opens only after the send, to mark the job done."""
    settings = ctx.services.settings
    send(ctx.services.database, ctx.services.mailer, AccountEvent.from_args(args),
         public_url=settings.public_url, currency=settings.stripe_currency.upper())


def _check(event: AccountEvent) -> None:
    if event.kind not in KINDS:
        raise ValueError(f"unknown account event kind {event.kind!r}")
    if not event.key or not event.account_id:
        raise ValueError("an account event needs an account and a key")


def _jsonable(value: Any) -> Any:
    """Money as strings (never a float), instants and days in ISO form."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


TASKS: tuple[Task, ...] = (Task(SEND_TASK, send_notice),)
"""The notice of one account event (queued by :func:`publish`, retried by the queue)."""
