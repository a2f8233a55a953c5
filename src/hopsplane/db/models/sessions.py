"""Browser sessions, kept server-side (revision 0014, schema `hopsplane`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class WebSession(Base):
    """A signed-in browser: the SHA-256 of its cookie's token (never the token), who it is,
    until when, and whether it was revoked (sign-out, "sign out everywhere")."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("token_sha256", name="sessions_token_sha256_key"),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="sessions_user_id_fkey", ondelete="CASCADE"
        ),
        Index("sessions_user_live_idx", "user_id", postgresql_where=text("revoked_at IS NULL")),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    token_sha256: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    sub: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
