"""Pure rules of the ledger (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from hopsplane.errors import Invalid
from hopsplane.money import parse_amount

MAX_KEY_LENGTH = 255


class EntryType(StrEnum):
    PURCHASE = "purchase"
    GRANT = "grant"
    REFUND = "refund"
    USAGE = "usage"
    EXPIRY = "expiry"  # what was left of an expiring grant, removed at its expiry
    DISPUTE = "dispute"  # a Stripe dispute (chargeback) of a purchase
    DISPUTE_REVERSAL = "dispute_reversal"  # a dispute the account won: the amount back

    @property
    def is_credit(self) -> bool:
        return self in (EntryType.PURCHASE, EntryType.GRANT, EntryType.DISPUTE_REVERSAL)

    @property
    def may_overdraw(self) -> bool:
        """Usage (the compute was already used), a dispute (the money already left) and an
        expiry (it removes only what is left of a grant, but earlier usage may have found
        nothing drawable) may take a balance below zero; nothing else may."""
        return self in (EntryType.USAGE, EntryType.DISPUTE, EntryType.EXPIRY)


def parse_entry_type(value: str) -> EntryType:
    try:
        return EntryType(value)
    except ValueError as exc:
        allowed = ", ".join(t.value for t in EntryType)
        raise Invalid(f"entry type must be one of {allowed}, got {value!r}") from exc


def validate_posting(entry_type: EntryType, amount: object, idempotency_key: str) -> Decimal:
    """Return the amount as exact cents, or raise Invalid with what to fix."""
    value = parse_amount(amount)
    if value == 0:
        raise Invalid("amount must not be zero")
    if entry_type.is_credit and value < 0:
        raise Invalid(f"a {entry_type} adds credit: its amount must be positive, got {value}")
    if not entry_type.is_credit and value > 0:
        raise Invalid(f"a {entry_type} takes credit: its amount must be negative, got {value}")
    key = idempotency_key.strip() if idempotency_key else ""
    if not key or len(key) > MAX_KEY_LENGTH or key != idempotency_key:
        raise Invalid(
            f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters without surrounding spaces"
        )
    return value


MAX_GRANT_LIFETIME = timedelta(days=3660)
EXPIRY_NOTICE = timedelta(days=7)
"""Owners are told this long before promotional credit expires (once per grant)."""


def validate_expiry(expires_at: datetime, now: datetime) -> datetime:
    """An expiring grant's expiry: timezone-aware, in the future, within ten years."""
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise Invalid("the expiry must carry a timezone (e.g. 2027-01-31T00:00:00Z)")
    if expires_at <= now:
        raise Invalid(f"the expiry {expires_at.isoformat()} is not in the future")
    if expires_at - now > MAX_GRANT_LIFETIME:
        raise Invalid("the expiry must be within ten years")
    return expires_at


def promotional_part(balance: Decimal, left: list[Decimal]) -> Decimal:
    """How much of a balance is promotional: what is left of the expiring grants, but never
    more than the balance (an overdraft not yet covered is owed before anything else)."""
    return max(Decimal("0.00"), min(balance, sum(left, Decimal("0.00"))))


def parse_expiry_date(value: str) -> datetime:
    """``--expires YYYY-MM-DD``: the credit expires at the start of that day, UTC."""
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise Invalid(f"--expires must be a date YYYY-MM-DD, got {value!r}") from exc
    return datetime.combine(day, time.min, tzinfo=UTC)


STRIPE_REFUND_KEY_PREFIX = "stripe:refund:"
"""The ledger keys of refunds Stripe made (``origins.StripeRefund``). The database's
``credits_ledger_only_usage_overdraws`` names the same prefix (revision 0022)."""


def may_overdraw(entry_type: EntryType, idempotency_key: str) -> bool:
    """Whether a debit may take the balance below zero: the types of
    :attr:`EntryType.may_overdraw`, and a refund Stripe made. That money already went back
    to the customer, so the ledger records it whatever the balance, exactly like a dispute
    (and the posting's standing update suspends the account at or below zero). A refund
    made here (admin, operator) is still refused below zero: it can wait for the balance."""
    return entry_type.may_overdraw or (
        entry_type is EntryType.REFUND and idempotency_key.startswith(STRIPE_REFUND_KEY_PREFIX)
    )


def would_overdraw(
    entry_type: EntryType, amount: Decimal, balance: Decimal, idempotency_key: str = ""
) -> bool:
    return (not may_overdraw(entry_type, idempotency_key)) and amount < 0 and balance + amount < 0


# --- balance enforcement ----------------------------------------------------------------

DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal("10.00"), Decimal("1.00"), Decimal("0.00"))


def notice_level(balance: Decimal, thresholds: tuple[Decimal, ...]) -> Decimal | None:
    """The lowest threshold the balance is at or under (None above every threshold).

    A low-balance notice is due when this level drops below the level already announced;
    a level that rises again re-arms the thresholds above it (once per crossing). The SQL
    in ``credits.repository.apply_standing`` implements the same rule set-based.
    """
    under = [t for t in thresholds if balance <= t]
    return min(under) if under else None


def is_suspended(balance: Decimal) -> bool:
    """At or below zero the account is suspended (its Hopsworks users stop)."""
    return balance <= 0


def standing_may_change(
    amount: Decimal, balance: Decimal, thresholds: tuple[Decimal, ...]
) -> bool:
    """False when the balance stays above every threshold and above zero before and after
    the posting: then neither the suspension nor the announced level can change (the
    standing already says "above everything"), and the posting skips that statement."""
    ceiling = max((*thresholds, Decimal(0)))
    return not (balance > ceiling and balance - amount > ceiling)


@dataclass(frozen=True, slots=True)
class StandingWords:
    """How an account's standing is said, the same on the console and in the CLI."""

    state: str  # suspended | below_zero | no_credits | low | good
    short: str  # a few words (the CLI's parenthesis, a badge)
    text: str  # the sentence of the console's home page (money written by the caller)
    alarming: bool  # shown in red: something stops, or will


def standing_words(balance: Decimal, suspended: bool, low_threshold_text: str | None
                   ) -> StandingWords:
    """``low_threshold_text``: the announced low-balance threshold, written as money, when
    the balance is at or below it (None otherwise). A new account holds nothing and owes
    nothing: it is in good standing, told kindly how to start, never "out of credits"."""
    if suspended:
        return StandingWords(
            "suspended", "suspended",
            "Suspended: your workloads on Hopsworks were stopped because the credits ran "
            "out. Add credits to resume; nothing restarts by itself.", True)
    if balance < 0:
        return StandingWords(
            "below_zero", "below zero",
            "Below zero: usage went past your credits. Add credits now, or your workloads "
            "will be stopped.", True)
    if balance == 0:
        return StandingWords(
            "no_credits", "in good standing, no credits yet",
            "In good standing, with no credits yet: add credits before you start work on "
            "Hopsworks.", False)
    if low_threshold_text is not None:
        return StandingWords(
            "low", "running low",
            f"Running low: the balance is below {low_threshold_text}.", False)
    return StandingWords("good", "in good standing",
                         "In good standing: your workloads run normally.", False)
