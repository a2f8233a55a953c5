"""Prices, standing, balance events and member budgets (schema `hopsplane`)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import BALANCE, MACHINERY_SCHEMA, MONEY, PRICE, Base


class PriceOverride(Base):
    """A platform admin's unit price for one account, applying from ``effective_from``."""

    __tablename__ = "price_overrides"
    __table_args__ = (
        PrimaryKeyConstraint("account_owner_id", "effective_from", name="price_overrides_pkey"),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="price_overrides_owner_fkey",
            ondelete="RESTRICT",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    account_owner_id: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    unit_price: Mapped[Decimal] = mapped_column(PRICE)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))


class AccountStanding(Base):
    """Suspended or not, and the lowest low-balance threshold already announced."""

    __tablename__ = "account_standing"
    __table_args__ = ({"schema": MACHINERY_SCHEMA},)

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    notice_threshold: Mapped[Decimal | None] = mapped_column(BALANCE)
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MemberBudget(Base):
    """An owner's monthly budget for one member of their team (billing)."""

    __tablename__ = "member_budgets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["member_id"], ["users.id"], name="member_budgets_member_id_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="member_budgets_account_owner_id_fkey",
            ondelete="CASCADE",
        ),
        Index("member_budgets_account_idx", "account_owner_id"),
        {"schema": MACHINERY_SCHEMA},
    )

    member_id: Mapped[str] = mapped_column(Text, primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    monthly_budget: Mapped[Decimal] = mapped_column(MONEY)
    enforce: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    stopped_month: Mapped[date | None] = mapped_column(Date)
    set_by: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # the highest threshold announced for this month at this amount (revision 0025)
    noticed_month: Mapped[date | None] = mapped_column(Date)
    noticed_budget: Mapped[Decimal | None] = mapped_column(MONEY)
    noticed_percent: Mapped[int | None] = mapped_column(SmallInteger)
