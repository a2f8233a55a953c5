"""Rate-limit counters (machinery, schema `hopsplane`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class RateLimitCounter(Base):
    """One fixed window of one rate-limit bucket (e.g. ``invite:create:<account>``)."""

    __tablename__ = "rate_limits"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "window_start", name="rate_limits_pkey"),
        Index("rate_limits_window_start_idx", "window_start"),
        {"schema": MACHINERY_SCHEMA},
    )

    bucket: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime]
    hits: Mapped[int] = mapped_column(Integer, server_default=text("1"))
