"""Stripe events, auto top-up consent and attempts, and purchase receipts (schema `hopsplane`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from hopsplane.db.models.base import MACHINERY_SCHEMA, Base


class StripeEvent(Base):
    __tablename__ = "stripe_events"
    __table_args__ = (
        Index(
            "stripe_events_object_idx",
            "object_id",
            postgresql_where=text("object_id IS NOT NULL"),
        ),
        Index(
            "stripe_events_failed_idx",
            "received_at",
            postgresql_where=text("status = 'failed'"),
        ),
        {
            "schema": MACHINERY_SCHEMA,
            "comment": "Every Stripe webhook event once, by id; processed in the "
            "transaction that stored it.",
        },
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    livemode: Mapped[bool] = mapped_column(Boolean)
    stripe_created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(Text, server_default=text("'received'"))
    object_id: Mapped[str | None] = mapped_column(Text)
    account_owner_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]


TOPUP_MONEY = Numeric(12, 2)


class AutoTopupConsent(Base):
    """What an owner agreed to when turning auto top-up on: the exact terms shown, who,
    when; ``revoked_*`` once turned off or the card removed."""

    __tablename__ = "auto_topup_consents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="auto_topup_consents_account_fkey",
            ondelete="CASCADE",
        ),
        CheckConstraint("length(terms) > 0", name="auto_topup_consents_terms_check"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by IS NULL) AND "
            "(revoked_at IS NULL OR revoked_at >= given_at)",
            name="auto_topup_consents_revoked_check",
        ),
        Index("auto_topup_consents_account_idx", "account_owner_id", "given_at"),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    given_by: Mapped[str] = mapped_column(Text)
    given_at: Mapped[datetime] = mapped_column(server_default=func.now())
    terms: Mapped[str] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(Text)


class AutoTopup(Base):
    """An account's auto top-up: on/off/paused, threshold and amount, the saved card, the
    consent in force and the day's counters its limits are checked against."""

    __tablename__ = "auto_topup"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["users.id"], name="auto_topup_account_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["consent_id"], ["hopsplane.auto_topup_consents.id"],
            name="auto_topup_consent_fkey",
        ),
        CheckConstraint(
            "status IN ('off', 'awaiting_card', 'on', 'paused')",
            name="auto_topup_status_check",
        ),
        CheckConstraint(
            "(status = 'paused') = (paused_reason IS NOT NULL)",
            name="auto_topup_paused_reason_check",
        ),
        CheckConstraint(
            "status NOT IN ('on', 'paused') OR "
            "(payment_method_id IS NOT NULL AND consent_id IS NOT NULL)",
            name="auto_topup_on_needs_card_and_consent_check",
        ),
        CheckConstraint(
            "threshold >= 0 AND amount > 0 AND day_amount >= 0 AND day_count >= 0 AND "
            "consecutive_failures >= 0",
            name="auto_topup_amounts_check",
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    account_owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, server_default=text("'off'"))
    paused_reason: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    currency: Mapped[str] = mapped_column(Text)
    payment_method_id: Mapped[str | None] = mapped_column(Text)
    card_label: Mapped[str | None] = mapped_column(Text)
    consent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    day: Mapped[date] = mapped_column(
        Date, server_default=text("((now() AT TIME ZONE 'UTC'::text))::date")
    )
    day_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    day_amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


AUTO_TOPUP_ACTIVE = "status IN ('scheduled', 'charging', 'processing', 'requires_action')"


class AutoTopupAttempt(Base):
    """One threshold crossing's auto top-up: its tries, the last PaymentIntent, the
    outcome. Unique per (account, crossing); at most one active per account."""

    __tablename__ = "auto_topup_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_owner_id"], ["hopsplane.auto_topup.account_owner_id"],
            name="auto_topup_attempts_account_fkey", ondelete="CASCADE",
        ),
        UniqueConstraint(
            "account_owner_id", "crossing_key", name="auto_topup_attempts_crossing_key"
        ),
        CheckConstraint(
            "status IN ('scheduled', 'charging', 'processing', 'requires_action', "
            "'succeeded', 'failed', 'canceled')",
            name="auto_topup_attempts_status_check",
        ),
        CheckConstraint("amount > 0 AND tries >= 0", name="auto_topup_attempts_amount_check"),
        CheckConstraint(
            "status <> 'scheduled' OR next_try_at IS NOT NULL",
            name="auto_topup_attempts_scheduled_check",
        ),
        Index(
            "auto_topup_attempts_one_active", "account_owner_id", unique=True,
            postgresql_where=text(AUTO_TOPUP_ACTIVE),
        ),
        Index("auto_topup_attempts_account_idx", "account_owner_id", text("created_at DESC")),
        Index(
            "auto_topup_attempts_payment_intent_idx", "payment_intent_id",
            postgresql_where=text("payment_intent_id IS NOT NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_owner_id: Mapped[str] = mapped_column(Text)
    crossing_key: Mapped[str] = mapped_column(Text)
    threshold: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    amount: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    balance_at_crossing: Mapped[Decimal] = mapped_column(TOPUP_MONEY)
    status: Mapped[str] = mapped_column(Text, server_default=text("'scheduled'"))
    tries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_try_at: Mapped[datetime | None]
    payment_intent_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PurchaseReceipt(Base):
    """The Stripe receipt of a purchase (payments): the paid invoice Checkout created, or
    the charge's receipt for purchases from before invoices were created."""

    __tablename__ = "purchase_receipts"
    __table_args__ = (
        Index("purchase_receipts_account_idx", "account_owner_id"),
        Index(
            "purchase_receipts_missing_idx",
            "payment_intent_id",
            postgresql_where=text("receipt_url IS NULL"),
        ),
        {"schema": MACHINERY_SCHEMA},
    )

    payment_intent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    account_owner_id: Mapped[str] = mapped_column(Text)
    invoice_id: Mapped[str | None] = mapped_column(Text)
    receipt_url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
