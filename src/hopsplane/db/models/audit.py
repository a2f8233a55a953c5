"""The audit log (revision 0026, schema `hopsplane`): append-only, a trigger refuses
UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class AuditEntry(Base):
    """One decision: who (actor kind and id), what (action, target), on which account,
    before and after, when, from where (ip, "cli" or a job), in which request."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_account_idx", "account_owner_id", "id"),
        Index("audit_log_occurred_idx", "occurred_at"),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_kind: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    source: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
