"""Team invites (`team_invites`, revision 0001 onwards)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Computed,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import Base


class TeamInvite(Base):
    __tablename__ = "team_invites"
    __table_args__ = (
        UniqueConstraint("token_hash", name="team_invites_token_hash_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="team_invites_owner_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["accepted_by"], ["users.id"], name="team_invites_accepted_by_fkey",
            ondelete="SET NULL",
        ),
        Index(
            "team_invites_one_live_per_email",
            "account_owner_id",
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
        Index(
            "team_invites_accepted_by_idx",
            "accepted_by",
            postgresql_where=text("accepted_by IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text)  # SHA-256 hex of the token
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))
