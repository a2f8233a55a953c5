"""Use cases of outbound webhooks. Functions take the session first and never commit,
except :func:`deliver`, the job, which opens its own short transactions around the send.

Deliveries are not made here: ``hopsplane.publish_event`` (the one publish point of
account events, revision 0027) inserts one delivery per enabled endpoint subscribed to the
event's type, with its ``webhooks.deliver`` job, in the transaction that caused the event.
An event has one ``webhook-id`` (from its key) for every endpoint, attempt and replay, so
a consumer deduplicates by it: delivery is at least once (a crash after the consumer
answered and before the job's commit sends again).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict, NotFound, Unavailable
from hopsplane.integrations.webhooks import AddressRefused, WebhookSender, check_url
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.webhooks import repository as repo
from hopsplane.webhooks import rules
from hopsplane.webhooks.schemas import (
    DeliveryOut,
    EndpointChange,
    EndpointIn,
    EndpointOut,
    EndpointWithSecret,
)
from hopsplane.worker import service as queue

log = structlog.get_logger(__name__)

DELIVER_TASK = "webhooks.deliver"
RECENT_DELIVERIES = 50
KEEP_DELIVERIES = timedelta(days=30)


def create_endpoint(session: Session, box: SecretBox, account: str, body: EndpointIn, *,
                    created_by: str | None, allow_http: bool) -> EndpointWithSecret:
    """Register an endpoint; its signing secret is in the answer, and only there."""
    check_url(body.url, allow_http=allow_http)
    types = rules.event_types(body.event_types)
    description = rules.description(body.description)
    repo.lock_account(session, account)
    if repo.count(session, account) >= rules.MAX_ENDPOINTS:
        raise Conflict(f"an account has at most {rules.MAX_ENDPOINTS} webhook endpoints",
                       code="too_many_endpoints")
    secret = rules.new_secret()
    row = repo.insert(session, account, body.url, description, types, box.encrypt(secret),
                      created_by)
    audit.record(session, "webhooks.endpoint_created", account_id=account,
                 target=f"webhook_endpoint:{row['id']}", after=_audited(row))
    log.info("webhook endpoint created", account=account, endpoint=str(row["id"]))
    return EndpointWithSecret(**_out(row).model_dump(), secret=secret)


def endpoints(session: Session, account: str) -> list[EndpointOut]:
    return [_out(r) for r in repo.endpoints(session, account)]


def delete_endpoint(session: Session, account: str, endpoint_id: uuid.UUID) -> None:
    """Remove an endpoint and its delivery log; its queued deliveries find it gone."""
    row = _endpoint(session, account, endpoint_id, lock=True)
    if not repo.delete(session, account, endpoint_id):  # pragma: no cover - locked above
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    audit.record(session, "webhooks.endpoint_deleted", account_id=account,
                 target=f"webhook_endpoint:{endpoint_id}", before=_audited(row))


def enable_endpoint(session: Session, account: str, endpoint_id: uuid.UUID) -> EndpointOut:
    """Turn a disabled endpoint back on (new events are delivered to it again)."""
    return change_endpoint(session, account, endpoint_id, EndpointChange(enabled=True))


def change_endpoint(session: Session, account: str, endpoint_id: uuid.UUID,
                    body: EndpointChange) -> EndpointOut:
    """Change what an endpoint wants (event types), its description, or turn it off or
    on; what is not given stays. The URL is not changed here: a new URL is a new
    endpoint (with its own secret)."""
    row = _endpoint(session, account, endpoint_id, lock=True)
    types = rules.event_types(body.event_types) if body.event_types is not None else None
    description = rules.description(body.description) if body.description is not None \
        else None
    enabled = row["enabled"] if body.enabled is None else body.enabled
    repo.change(session, endpoint_id,
                event_types=types if types is not None else list(row["event_types"]),
                description=row["description"] if description is None else description,
                enabled=enabled,
                disabled_reason=None if enabled else (
                    row["disabled_reason"] if not row["enabled"] else "turned off by its owner"))
    after = _endpoint(session, account, endpoint_id)
    audit.record(session, "webhooks.endpoint_changed", account_id=account,
                 target=f"webhook_endpoint:{endpoint_id}", before=_audited(row),
                 after=_audited(after))
    return _out(after)


def rotate_secret(session: Session, box: SecretBox, account: str, endpoint_id: uuid.UUID,
                  now: datetime | None = None) -> EndpointWithSecret:
    """A new signing secret, shown once; the current one goes on signing too (a second
    signature) for :data:`rules.ROTATION_OVERLAP`, so the consumer can switch."""
    row = _endpoint(session, account, endpoint_id, lock=True)
    secret = rules.new_secret()
    until = (now or datetime.now(UTC)) + rules.ROTATION_OVERLAP
    updated = repo.rotate(session, endpoint_id, box.encrypt(secret), row["secret"], until)
    # the secrets are never recorded: only that one was rotated and until when both sign
    audit.record(session, "webhooks.secret_rotated", account_id=account,
                 target=f"webhook_endpoint:{endpoint_id}",
                 before={"previous_secret_until": row["previous_until"]},
                 after={"previous_secret_until": until})
    return EndpointWithSecret(**_out(updated).model_dump(), secret=secret)


def deliveries(session: Session, account: str, endpoint_id: uuid.UUID) -> list[DeliveryOut]:
    _endpoint(session, account, endpoint_id)
    return [DeliveryOut(**r) for r in repo.deliveries(session, endpoint_id,
                                                      RECENT_DELIVERIES)]


def replay(session: Session, account: str, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
           ) -> DeliveryOut:
    """Send a delivery again (same ``webhook-id``: the consumer may deduplicate it)."""
    _endpoint(session, account, endpoint_id)
    found = repo.delivery(session, endpoint_id, delivery_id)
    if found is None:
        raise NotFound(f"no delivery {delivery_id} of this endpoint")
    repo.reopen(session, delivery_id)
    queue.enqueue(session, DELIVER_TASK, {"delivery": str(delivery_id), "replay": True},
                  idempotency_key=f"webhook:replay:{delivery_id}:{uuid.uuid4()}",
                  max_attempts=1)
    again = repo.delivery(session, endpoint_id, delivery_id)
    assert again is not None
    return DeliveryOut(**again)


def deliver(database: Database, box: SecretBox, sender: WebhookSender,
            delivery_id: uuid.UUID, *, now: datetime | None = None,
            replay: bool = False) -> str:
    """One attempt: read the delivery in a short transaction, POST it with none open,
    record the answer in another. Returns the delivery's status. A failure inside the
    retry window raises (the queue retries with backoff); past it, the delivery fails,
    and an endpoint with no success since the delivery was made is disabled and its
    owner told by email. An address refused at send time fails the delivery at once
    (retrying soon would not change it); the endpoint stays on."""
    at = now or datetime.now(UTC)
    with database.transaction() as s:
        row = repo.to_send(s, delivery_id)
    if row is None:
        return "gone"  # its endpoint was removed
    if not row["enabled"] and not replay:
        with database.transaction() as s:
            repo.record(s, delivery_id, "failed", None, None, "the endpoint is disabled")
        return "failed"
    body = json.dumps(row["payload"], separators=(",", ":"), sort_keys=True)
    keys = rules.signing_secrets(box.decrypt(row["secret"]),
                                 box.decrypt(row["previous_secret"])
                                 if row["previous_secret"] else None,
                                 row["previous_until"], at)
    headers = rules.headers(row["message_id"], at, body, keys)
    status, code, prefix, error, refused = "failed", None, None, None, False
    try:
        response = sender.post(row["url"], headers, body.encode())
        code, prefix = response.status, response.body_prefix
        if rules.succeeded(response.status):
            status = "succeeded"
        else:
            error = f"the endpoint answered {response.status}"
    except AddressRefused as exc:  # retrying soon would not change it
        error, refused = exc.message, True
    except Unavailable as exc:
        error = exc.message
    final = status == "succeeded" or refused or replay or rules.window_over(
        row["created_at"], at)
    with database.transaction() as s:
        repo.record(s, delivery_id, status if final else "pending", code, prefix, error)
        if status == "failed" and not replay and rules.window_over(row["created_at"], at):
            _maybe_disable(s, row, error or "failed")
    if not final:
        raise Unavailable(f"webhook delivery {delivery_id} failed: {error}; retrying")
    return status


def prune(session: Session, now: datetime) -> int:
    """Delete finished deliveries older than :data:`KEEP_DELIVERIES`; returns how many."""
    return repo.delete_finished(session, now - KEEP_DELIVERIES)


def _maybe_disable(session: Session, row: RowMapping, why: str) -> None:
    """Disable the endpoint when nothing succeeded since this delivery was made (it kept
    failing for the whole window), and tell the owner once."""
    last = row["last_success_at"]
    if last is not None and last >= row["created_at"]:
        return
    current = repo.endpoint(session, row["account_owner_id"], row["endpoint_id"], lock=True)
    if current is None or not current["enabled"]:
        return  # gone, or another delivery's failure (or its owner) turned it off first
    reason = f"failed for {rules.RETRY_WINDOW.days} days: {why}"[:500]
    repo.set_enabled(session, row["endpoint_id"], False, reason)
    audit.record(session, "webhooks.endpoint_disabled", account_id=row["account_owner_id"],
                 target=f"webhook_endpoint:{row['endpoint_id']}", before={"enabled": True},
                 after={"enabled": False, "disabled_reason": reason})
    notices.publish(session, AccountEvent(
        "webhook_disabled", row["account_owner_id"],
        f"webhook_disabled:{row['endpoint_id']}:{row['id']}",
        {"endpoint_id": row["endpoint_id"], "url": row["url"], "error": why[:200]},
    ))
    log.warning("webhook endpoint disabled", endpoint=str(row["endpoint_id"]))


def _endpoint(session: Session, account: str, endpoint_id: uuid.UUID, *, lock: bool = False
              ) -> RowMapping:
    row = repo.endpoint(session, account, endpoint_id, lock=lock)
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return row


def _audited(row: Any) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: never its secrets."""
    return {"url": row["url"], "event_types": list(row["event_types"]),
            "description": row["description"], "enabled": row["enabled"]}


def _out(row: Any) -> EndpointOut:
    return EndpointOut(
        id=row["id"], url=row["url"], description=row["description"],
        event_types=list(row["event_types"]), enabled=row["enabled"],
        disabled_reason=row["disabled_reason"], created_at=row["created_at"],
        last_success_at=row["last_success_at"], previous_secret_until=row["previous_until"],
    )
