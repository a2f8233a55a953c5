"""SQL of hopsplane.audit_log: insert and read, never update (the database refuses it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hopsplane.db.models import AuditEntry

_INSERT = text(
    "INSERT INTO hopsplane.audit_log (actor_kind, actor_id, action, account_owner_id, target,"
    " before, after, source, request_id) VALUES (:kind, :actor, :action, :account, :target,"
    " CAST(:before AS jsonb), CAST(:after AS jsonb), :source, :request_id)"
)


def insert(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per decision (keys: kind, actor, action, account, target, before, after,
    source, request_id), in one executemany round trip however many."""
    if rows:
        session.execute(_INSERT, [
            {**row, "before": None if row["before"] is None else json.dumps(row["before"]),
             "after": None if row["after"] is None else json.dumps(row["after"])}
            for row in rows
        ])


def entries(
    session: Session, *, account_id: str | None, action: str | None, actor_kind: str | None,
    since: datetime | None, until: datetime | None, before_id: int | None, limit: int,
) -> Sequence[AuditEntry]:
    """Newest first. ``action`` matches exactly, or a prefix ending in a dot
    (``teams.`` is every team decision)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(AuditEntry.account_owner_id == account_id)
    if action is not None:
        query = query.where(
            AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
            else AuditEntry.action == action
        )
    if actor_kind is not None:
        query = query.where(AuditEntry.actor_kind == actor_kind)
    if since is not None:
        query = query.where(AuditEntry.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEntry.occurred_at < until)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return session.scalars(query).all()
