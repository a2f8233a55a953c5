"""The job queue of `hopsplane worker`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import _EMPTY_JSON, MACHINERY_SCHEMA, Base


class Job(Base):
    """A unit of work of `hopsplane worker` (see hopsplane.worker)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="jobs_idempotency_key_key"),
        Index(
            "jobs_due_idx", "run_at", "id", postgresql_where=text("status = 'queued'")
        ),
        Index(
            "jobs_one_running_per_lock_key", "lock_key", unique=True,
            postgresql_where=text("status = 'running' AND lock_key IS NOT NULL"),
        ),
        Index("jobs_lease_idx", "lease_expires_at", postgresql_where=text("status = 'running'")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    task: Mapped[str] = mapped_column(Text)
    args: Mapped[dict[str, Any]] = mapped_column(server_default=_EMPTY_JSON)
    lock_key: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'queued'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("20"))
    run_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # revision 0011: a running job's lease (see hopsplane.worker)
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
