"""Data shapes of payments, shared by the service, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.credits.schemas import LedgerEntryOut
from hopsplane.money import Amount


@dataclass(frozen=True, slots=True)
class Payment:
    """A succeeded Stripe payment that buys credits for an account owner."""

    account_owner_id: str
    payment_intent_id: str
    amount: Decimal  # currency units, whole cents; one credit per unit
    currency: str


@dataclass(frozen=True, slots=True)
class FulfilResult:
    entry: LedgerEntryOut
    created: bool  # False: this payment had already been credited (the original entry)


EventStatus = Literal["processed", "ignored", "failed", "duplicate"]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    event_id: str
    status: EventStatus
    note: str | None = None
    account_owner_id: str | None = None


class TopupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount = Field(
        description="Amount to buy, in currency units (within HOPSPLANE_MIN_TOPUP and "
        "HOPSPLANE_MAX_TOPUP): a decimal string such as \"50.00\" or an integer."
    )


class TopupOut(BaseModel):
    session_id: str
    url: str
    amount: Decimal
    currency: str


class TopupStatusOut(BaseModel):
    session_id: str
    payment_status: str
    credited: bool = Field(description="True when the purchase is in the ledger.")
    amount: Decimal | None
    balance: Decimal | None = Field(
        description="The account's balance; null when the caller may not see it (a buyer "
        "who has since joined a team without a billing role).")


class WebhookAck(BaseModel):
    received: bool = True
    event_id: str
    status: EventStatus
    note: str | None = None


DiscrepancyKind = Literal[
    "missing_purchase",
    "missing_refund",
    "amount_differs",
    "ledger_refunded_more",
    "invalid_payment",
    "unknown_to_stripe",
    "not_succeeded_in_stripe",
    "missing_dispute",
    "missing_dispute_reversal",
]


@dataclass(slots=True)
class Discrepancy:
    kind: DiscrepancyKind
    payment_intent_id: str
    account_owner_id: str | None
    amount: Decimal
    detail: str
    fixed: bool = False
    fix_error: str | None = None


@dataclass(slots=True)
class ReconcileReport:
    charges_seen: int = 0
    payments_checked: int = 0
    disputes_seen: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.fixed for d in self.discrepancies)


class LedgerEntryWithReceipt(LedgerEntryOut):
    """A ledger entry with the Stripe receipt of a purchase: the hosted invoice
    page (or, for purchases from before invoices, the charge's receipt page) and the
    invoice's PDF. None for every other entry and for a purchase without a receipt yet."""

    receipt_url: str | None = None
    receipt_pdf_url: str | None = None
