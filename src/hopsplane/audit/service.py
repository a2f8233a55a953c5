"""The one way a decision enters the audit log, and the reads of it.

``record`` writes in the caller's session, so the entry commits with the decision or not
at all (a rolled-back decision leaves no entry). Who acts is the actor the edge bound to
the session (``actors.bind``), or the one passed; without either, the system."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from hopsplane.audit import repository
from hopsplane.audit.actors import SYSTEM, Actor, bound
from hopsplane.audit.schemas import AuditEntryOut


def record(
    session: Session, action: str, *, account_id: str | None, target: str | None = None,
    before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
) -> None:
    """Record one decision. ``action`` is ``domain.verb`` (``credits.grant``); ``before``
    and ``after`` the part of the state it changed (None for a creation / a removal). A
    "change" whose after equals its before decided nothing and is not recorded."""
    record_many(session, [Decision(action, account_id, target, before, after)], actor=actor)


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of a batch (:func:`record_many`), as :func:`record` takes it."""

    action: str
    account_id: str | None
    target: str | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


def record_many(session: Session, decisions: Sequence[Decision], *,
                actor: Actor | None = None) -> None:
    """Record the decisions of one set-based statement (the billing run suspending
    accounts) in one round trip, all by the same actor."""
    who = actor or bound(session) or SYSTEM
    rows = []
    for d in decisions:
        before_json, after_json = _jsonable(d.before), _jsonable(d.after)
        if d.before is not None and d.after is not None and before_json == after_json:
            continue
        rows.append({"kind": who.kind, "actor": who.id, "action": d.action,
                     "account": d.account_id, "target": d.target, "before": before_json,
                     "after": after_json, "source": who.source, "request_id": who.request_id})
    repository.insert(session, rows)


def _jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {key: _plain(value) for key, value in values.items()}


def _plain(value: Any) -> Any:
    """Exact and readable in JSON: money as its decimal string, times in ISO 8601."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def entries(
    session: Session, *, account_id: str | None, action: str | None = None,
    actor_kind: str | None = None, since: datetime | None = None,
    until: datetime | None = None, before_id: int | None = None, limit: int = 50,
) -> list[AuditEntryOut]:
    """Newest first; ``account_id`` None reads every account (platform admins, the CLI)."""
    rows = repository.entries(
        session, account_id=account_id, action=action, actor_kind=actor_kind, since=since,
        until=until, before_id=before_id, limit=limit,
    )
    return [AuditEntryOut.model_validate(row) for row in rows]


def all_entries(
    session: Session, *, account_id: str | None, action: str | None = None,
    actor_kind: str | None = None, since: datetime | None = None,
    until: datetime | None = None, batch: int = 1000,
) -> Iterator[AuditEntryOut]:
    """Every matching entry, newest first, read a page at a time (CSV exports)."""
    before_id: int | None = None
    while True:
        page = entries(session, account_id=account_id, action=action, actor_kind=actor_kind,
                       since=since, until=until, before_id=before_id, limit=batch)
        yield from page
        if len(page) < batch:
            return
        before_id = page[-1].id
