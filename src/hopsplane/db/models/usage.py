"""Metered usage: the daily `usage_tracking` rows and the raw events they are folded from."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Computed,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import _EMPTY_JSON, MACHINERY_SCHEMA, PRICE, UNITS, Base


class UsageTracking(Base):
    __tablename__ = "usage_tracking"
    __table_args__ = (
        UniqueConstraint("account_owner_id", "date", name="usage_tracking_account_date_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="usage_tracking_owner_fkey",
            ondelete="RESTRICT",
        ),
        # the rows with something left to charge
        Index(
            "usage_tracking_unbilled_idx",
            "account_owner_id",
            "date",
            postgresql_where=text("total_cost > billed_amount"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    date: Mapped[date] = mapped_column(Date)
    compute_units: Mapped[Decimal] = mapped_column(UNITS, server_default=text("0"))
    unit_price: Mapped[Decimal] = mapped_column(PRICE, server_default=text("0.0001"))
    total_cost: Mapped[Decimal] = mapped_column(
        Numeric(16, 2), Computed("round(compute_units * unit_price, 2)", persisted=True)
    )
    user_breakdown: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    raw_metrics: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))
    # how much of total_cost is already charged (updated with the usage debit)
    billed_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2), server_default=text("0"))


class UsageEvent(Base):
    """One usage event as received (hopsplane.usage_events), identified by its source and
    its id (revision 0013). An id repeated by the same source is ignored; the same id from
    two sources is two events. A re-collected Prometheus day updates its event in place
    (``revision`` + 1)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        PrimaryKeyConstraint("source", "event_id", name="usage_events_pkey"),
        Index(
            "usage_events_unmatched_idx",
            "source",
            "event_id",
            postgresql_where=text("status = 'unmatched'"),
        ),
        Index(
            "usage_events_collected_idx",
            "source",
            "day",
            postgresql_where=text("namespace IS NOT NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    event_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    account_id: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[int | None] = mapped_column(Integer)
    namespace: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    day: Mapped[date] = mapped_column(
        Date, Computed("(timezone('UTC', occurred_at))::date", persisted=True)
    )
    compute_units: Mapped[Decimal] = mapped_column(UNITS)
    cpu_seconds: Mapped[Decimal | None] = mapped_column(Numeric)
    status: Mapped[str] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    attributed_user_id: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UsageIngestToken(Base):
    """The SHA-256 of a cluster's usage ingestion token (never the token)."""

    __tablename__ = "usage_ingest_tokens"
    __table_args__ = (
        UniqueConstraint("token_sha256", name="usage_ingest_tokens_token_sha256_key"),
        ForeignKeyConstraint(
            ["cluster_id"],
            ["hopsworks_clusters.id"],
            name="usage_ingest_tokens_cluster_id_fkey",
            ondelete="CASCADE",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    cluster_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
