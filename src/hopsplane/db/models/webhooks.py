"""Outbound webhooks: endpoints and their deliveries (schema `hopsplane`, revision 0027)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class WebhookEndpoint(Base):
    """A URL an account wants its events at, with its (encrypted) signing secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"],
            name="webhook_endpoints_account_owner_id_fkey", ondelete="CASCADE",
        ),
        Index("webhook_endpoints_account_idx", "account_owner_id",
              postgresql_where=text("enabled")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    account_owner_id: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret: Mapped[str] = mapped_column(Text)  # Fernet ciphertext
    previous_secret: Mapped[str | None] = mapped_column(Text)  # Fernet ciphertext
    previous_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_success_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event for one endpoint: what was sent and how the last attempt went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["endpoint_id"], [f"{MACHINERY_SCHEMA}.webhook_endpoints.id"],
            name="webhook_deliveries_endpoint_id_fkey", ondelete="CASCADE",
        ),
        UniqueConstraint("endpoint_id", "message_id", name="webhook_deliveries_once"),
        Index("webhook_deliveries_recent_idx", "endpoint_id", text("created_at DESC")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    account_owner_id: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_prefix: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_at: Mapped[datetime | None]
