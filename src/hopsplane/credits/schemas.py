"""Data shapes of the ledger, shared by the service, the API and the CLI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.credits.rules import DEFAULT_THRESHOLDS, EntryType
from hopsplane.hooks import AccountHooks


@dataclass(frozen=True, slots=True)
class Posting:
    """A request to post one entry. ``idempotency_key`` makes a retry a no-op; it is made
    by :func:`hopsplane.credits.service.ledger_key` from the posting's origin."""

    account_owner_id: str
    entry_type: EntryType
    amount: Decimal
    idempotency_key: str
    description: str | None = None
    stripe_payment_intent_id: str | None = None
    refund_of: uuid.UUID | None = None
    expires_at: datetime | None = None  # an expiring grant
    refers_to: uuid.UUID | None = None  # an expiry's grant, a dispute reversal's dispute
    stripe_dispute_id: str | None = None  # a dispute and its reversal
    at: datetime | None = None  # the entry's time (default: the transaction's now())


@dataclass(frozen=True, slots=True)
class BalancePolicy:
    """How a posting announces what it does to an account's standing: the hooks that hear
    of suspensions and resumptions (None: a ``credits.announce_standing`` job does) and
    the low-balance thresholds (``settings.thresholds``)."""

    hooks: AccountHooks | None = None
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    account_owner_id: str
    seq: int
    type: EntryType
    amount: Decimal
    balance: Decimal
    description: str | None
    stripe_payment_intent_id: str | None
    refund_of: uuid.UUID | None
    idempotency_key: str
    created_at: datetime
    expires_at: datetime | None = None
    refers_to: uuid.UUID | None = None
    stripe_dispute_id: str | None = None


@dataclass(frozen=True, slots=True)
class BalanceEvent:
    """A change of standing caused by a posting: a low-balance notice (``threshold`` set),
    a suspension, a resumption or a recovery. Published (``hopsplane.notices``) in the
    posting's transaction: ``id`` is its notice job (None when it was published before),
    ``announce_job`` the job that announces a suspension or resumption to the hooks when
    the posting had none."""

    id: int | None
    account_owner_id: str
    kind: str  # low_balance | suspended | resumed | recovered
    threshold: Decimal | None
    balance: Decimal
    ledger_seq: int
    announce_job: int | None = None


@dataclass(frozen=True, slots=True)
class PostResult:
    entry: LedgerEntryOut
    created: bool  # False when the key was seen before and the original is returned
    events: tuple[BalanceEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of :func:`hopsplane.credits.service.post_many`."""

    created: int  # entries appended
    replayed: int  # postings whose key already existed with the same content
    events: tuple[BalanceEvent, ...] = ()


class PromotionalCredit(BaseModel):
    """What is left of one expiring grant, and when it expires."""

    amount: Decimal
    expires_at: datetime


class Standing(BaseModel):
    account_owner_id: str
    balance: Decimal
    suspended: bool
    notice_threshold: Decimal | None = None
    promotional: Decimal = Field(
        default=Decimal("0.00"),
        description="How much of the balance is promotional credit that expires (usage "
        "draws it first); the rest never expires.",
    )
    promotional_grants: list[PromotionalCredit] = Field(
        default_factory=list, description="The expiring grants with something left, "
        "soonest first.")


@dataclass(frozen=True, slots=True)
class ChainBreak:
    account_owner_id: str
    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    accounts: int
    entries: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks
