"""The credits ledger, and the lots, draws and checkpoints that say which credit paid for what."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import BALANCE, MACHINERY_SCHEMA, MONEY, Base


class LedgerEntry(Base):
    __tablename__ = "credits_ledger"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="credits_ledger_idempotency_key_key"),
        UniqueConstraint("account_owner_id", "seq", name="credits_ledger_account_seq_key"),
        UniqueConstraint(
            "account_owner_id", "seq", "balance", name="credits_ledger_account_seq_balance_key"
        ),
        ForeignKeyConstraint(
            ["account_owner_id", "account_is_member"],
            ["users.id", "users.is_member"],
            name="credits_ledger_owner_fkey",
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["account_owner_id", "prev_seq", "prev_balance"],
            [
                "credits_ledger.account_owner_id",
                "credits_ledger.seq",
                "credits_ledger.balance",
            ],
            name="credits_ledger_prev_fkey",
        ),
        ForeignKeyConstraint(
            ["refund_of"], ["credits_ledger.id"], name="credits_ledger_refund_of_fkey"
        ),
        Index(
            "credits_ledger_purchase_payment_intent_key",
            "stripe_payment_intent_id",
            unique=True,
            postgresql_where=text(
                "type = 'purchase' AND stripe_payment_intent_id IS NOT NULL"
            ),
        ),
        Index(
            "credits_ledger_refund_of_idx",
            "refund_of",
            postgresql_where=text("refund_of IS NOT NULL"),
        ),
        # revision 0017: expiring grants, expiries, disputes
        ForeignKeyConstraint(
            ["refers_to"], ["credits_ledger.id"], name="credits_ledger_refers_to_fkey"
        ),
        Index(
            "credits_ledger_one_expiry_per_grant",
            "refers_to",
            unique=True,
            postgresql_where=text("type = 'expiry'"),
        ),
        Index(
            "credits_ledger_one_entry_per_dispute",
            "stripe_dispute_id",
            "type",
            unique=True,
            postgresql_where=text("stripe_dispute_id IS NOT NULL"),
        ),
        Index(
            "credits_ledger_expiring_grants",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
        # revision 0023: does an account hold credit that expires
        Index(
            "credits_ledger_expiring_by_account",
            "account_owner_id",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance: Mapped[Decimal] = mapped_column(BALANCE)
    type: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    idempotency_key: Mapped[str] = mapped_column(Text)
    refund_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    prev_seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_balance: Mapped[Decimal | None] = mapped_column(BALANCE)
    account_is_member: Mapped[bool] = mapped_column(Boolean, Computed("false", persisted=True))
    expires_at: Mapped[datetime | None]  # an expiring grant (revision 0017)
    refers_to: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    stripe_dispute_id: Mapped[str | None] = mapped_column(Text)


class CreditLot(Base):
    """One row per drawn credit (its part left to draw) and per drawn debit that a credit
    did not cover in full (the part still owed). Written only by ``hopsplane.burn_down``
    and the draws' trigger (revision 0023)."""

    __tablename__ = "credit_lots"
    __table_args__ = (
        Index(
            "credit_lots_open_credits",
            "account_owner_id",
            text("(expires_at IS NULL)"),
            "expires_at",
            "seq",
            postgresql_where=text("is_credit AND NOT spent"),
        ),
        Index(
            "credit_lots_open_debits",
            "account_owner_id",
            "seq",
            postgresql_where=text("NOT is_credit AND NOT spent"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    is_credit: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None]
    at: Mapped[datetime]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    open: Mapped[Decimal] = mapped_column(MONEY)
    spent: Mapped[bool] = mapped_column(Boolean)  # open = 0; indexed instead of open (HOT)


class CreditDraw(Base):
    """A debit drew ``amount`` from a credit (append-only)."""

    __tablename__ = "credit_draws"
    __table_args__ = (
        PrimaryKeyConstraint("debit_entry_id", "credit_entry_id", name="credit_draws_pkey"),
        Index("credit_draws_credit_idx", "credit_entry_id"),
        {"schema": MACHINERY_SCHEMA},
    )

    debit_entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    credit_entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    drawn_at: Mapped[datetime]


class CreditCheckpoint(Base):
    """Every entry of the account up to ``seq`` has its lots and draws (revision 0023)."""

    __tablename__ = "credit_checkpoints"
    __table_args__ = ({"schema": MACHINERY_SCHEMA},)

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
