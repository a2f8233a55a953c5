"""Pure rules of the ledger (no I/O)."""

from __future__ import annotations

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

    @property
    def is_credit(self) -> bool:
        return self in (EntryType.PURCHASE, EntryType.GRANT)

    @property
    def may_overdraw(self) -> bool:
        """Only usage may take a balance below zero: the compute was already used."""
        return self is EntryType.USAGE


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


def would_overdraw(entry_type: EntryType, amount: Decimal, balance: Decimal) -> bool:
    return not entry_type.may_overdraw and amount < 0 and balance + amount < 0


# --- balance enforcement (issue 4) ------------------------------------------------------

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
