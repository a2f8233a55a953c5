"""Accounts and their people: the `users` table (revision 0001 onwards)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Computed,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import _EMPTY_JSON, Base


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email", name="users_email_key"),
        UniqueConstraint("id", "is_member", name="users_id_is_member_key"),
        UniqueConstraint("stripe_customer_id", name="users_stripe_customer_id_key"),
        UniqueConstraint("stripe_test_customer_id", name="users_stripe_test_customer_id_key"),
        ForeignKeyConstraint(
            ["account_owner_id", "owner_is_member"],
            ["users.id", "users.is_member"],
            name="users_owner_is_owner_fkey",
            ondelete="RESTRICT",
        ),
        Index(
            "users_account_owner_id_idx",
            "account_owner_id",
            postgresql_where=text("account_owner_id IS NOT NULL"),
        ),
        Index("users_email_lower_idx", func.lower(text("email"))),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_login_at: Mapped[datetime | None]
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    stripe_test_customer_id: Mapped[str | None] = mapped_column(Text)
    hopsworks_username: Mapped[str | None] = mapped_column(Text)
    hopsworks_project_id: Mapped[int | None] = mapped_column(Integer)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=_EMPTY_JSON)
    is_member: Mapped[bool] = mapped_column(
        Boolean, Computed("account_owner_id IS NOT NULL", persisted=True)
    )
    owner_is_member: Mapped[bool | None] = mapped_column(
        Boolean,
        Computed("CASE WHEN account_owner_id IS NOT NULL THEN false END", persisted=True),
    )

    @property
    def is_owner(self) -> bool:
        return self.account_owner_id is None
