"""Organizations (revision 0016, schema `public`, as the plan sketches)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import Base


class Organization(Base):
    """A group of an account's people, for grouping and delegated roles; billing stays
    with the account owner (``owner_id``)."""

    __tablename__ = "organizations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="organizations_owner_id_fkey", ondelete="CASCADE"
        ),
        CheckConstraint(
            "length(btrim(name)) BETWEEN 1 AND 100 AND name = btrim(name)",
            name="organizations_name_check",
        ),
        Index("organizations_owner_name_key", "owner_id", func.lower(text("name")), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OrganizationMember(Base):
    """A person of the owner's account in an organization, with a role: admin, billing or
    member."""

    __tablename__ = "organization_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="organization_members_organization_id_fkey", ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="organization_members_user_id_fkey",
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "role IN ('admin', 'billing', 'member')", name="organization_members_role_check"
        ),
        Index("organization_members_user_idx", "user_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    role: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())
