"""API keys of customers (revision 0026, schema `hopsplane`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class ApiKey(Base):
    """A key a customer's program authenticates with: the SHA-256 of the secret (never the
    secret), the account it acts for, what it may read, until when, and whether it was
    revoked."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("token_sha256", name="api_keys_token_sha256_key"),
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="api_keys_account_owner_id_fkey",
            ondelete="CASCADE",
        ),
        Index("api_keys_account_idx", "account_owner_id", "created_at"),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(Text)
    display_prefix: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
