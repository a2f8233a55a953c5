"""Helpers of the usage tests: clusters, accounts on clusters, events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.crypto import SecretBox
from hopsplane.db.models import HopsworksCluster, UsageTracking, User
from hopsplane.usage.schemas import UsageEventIn

_BOX = SecretBox(["dGVzdC1rZXktZm9yLWhvcHNwbGFuZS10ZXN0cy0zMmI="])


def make_cluster(session: Session, metadata: dict[str, Any] | None = None) -> uuid.UUID:
    cluster = HopsworksCluster(
        name=f"c-{uuid.uuid4().hex[:6]}", api_url="https://hw.example.com",
        api_key=_BOX.encrypt("key"), metadata_=metadata or {},
    )
    session.add(cluster)
    session.flush()
    return cluster.id


def make_account(
    session: Session,
    *,
    cluster: uuid.UUID | None = None,
    project_id: int | None = None,
    project_name: str | None = None,
    owner: str | None = None,
) -> str:
    uid = f"auth0|{uuid.uuid4().hex[:12]}"
    session.add(User(
        id=uid, email=f"{uid[6:]}@example.com", account_owner_id=owner,
        hopsworks_project_id=project_id,
        metadata_={"hopsworks_project_name": project_name} if project_name else {},
    ))
    session.flush()
    if cluster is not None and owner is None:
        assign(session, uid, cluster)
    return uid


def assign(session: Session, owner: str, cluster: uuid.UUID) -> None:
    session.execute(
        text("INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id) "
             "VALUES (:o, :c)"),
        {"o": owner, "c": cluster},
    )


def event(event_id: str | None = None, **fields: Any) -> UsageEventIn:
    fields.setdefault("timestamp", datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    if "cpu_seconds" not in fields:
        fields.setdefault("compute_units", "1")
    return UsageEventIn(id=event_id or uuid.uuid4().hex, **fields)


def day_row(session: Session, account: str, day: str = "2026-11-20") -> UsageTracking | None:
    session.expire_all()
    return session.query(UsageTracking).filter_by(
        account_owner_id=account, date=datetime.fromisoformat(day).date()
    ).one_or_none()


def units(session: Session, account: str, day: str = "2026-11-20") -> Decimal:
    row = day_row(session, account, day)
    return Decimal(0) if row is None else row.compute_units
