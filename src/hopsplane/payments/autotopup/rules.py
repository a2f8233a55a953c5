"""Pure rules of auto top-up (no I/O): what the owner agrees to, when a usage posting starts
a charge, the daily limits, the backoff after a decline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from hopsplane.errors import Invalid
from hopsplane.money import parse_amount

ACTIVE = ("scheduled", "charging", "processing", "requires_action")
"""Attempt states that may still charge or credit; at most one per account (the database's
``auto_topup_attempts_one_active`` index)."""

MAX_BACKOFF = timedelta(days=7)
TERMS_VERSION = "2026-11-30"


@dataclass(frozen=True, slots=True)
class Limits:
    max_per_day: int
    max_amount_per_day: Decimal
    max_failures: int
    backoff_seconds: int


def validate_settings(
    threshold: object, amount: object, min_topup: Decimal, max_topup: Decimal
) -> tuple[Decimal, Decimal]:
    """The threshold (0 up to the largest top-up) and the amount (a valid top-up)."""
    value = parse_amount(amount, minimum=min_topup, maximum=max_topup)
    below = parse_amount(threshold, field="threshold", minimum=Decimal("0.00"),
                         maximum=max_topup)
    return below, value


def terms_text(threshold: Decimal, amount: Decimal, currency: str, limits: Limits) -> str:
    """The exact words the owner agrees to (stored with the consent). Stripe asks for the
    customer's agreement to be charged off-session and how to cancel it
    (https://docs.stripe.com/payments/save-and-reuse, "Compliance")."""
    cur = currency.upper()
    return (
        f"Auto top-up terms ({TERMS_VERSION}). I authorise hopsplane to charge my saved card "
        f"{amount} {cur} without me being present each time usage takes my account's "
        f"credit balance below {threshold} {cur}, at most {limits.max_per_day} times and "
        f"{limits.max_amount_per_day} {cur} per day (UTC). Each charge buys the same amount "
        f"of credits, credited only once the payment has succeeded. After "
        f"{limits.max_failures} failed charges in a row auto top-up pauses and I am told. "
        f"I can turn auto top-up off or remove the card at any time in the console or the "
        f"API; no charge starts after that."
    )


def wants_topup(after: Decimal, threshold: Decimal) -> bool:
    """A usage posting left the balance below the threshold.

    Not only a crossing from above: the balance may have gone below by another route (an
    expiry, a dispute, a top-up that did not lift it back above, a charge the caps
    deferred), and later usage must still start a charge, or auto top-up goes quiet while
    "on". At most one attempt per account is active (the database's unique index), so a
    run of postings below the threshold starts one charge, not one each."""
    return after < threshold


def cap_refusal(
    day_count: int, day_amount: Decimal, amount: Decimal, limits: Limits
) -> str | None:
    """Why today's limits forbid one more charge of ``amount`` (None: allowed)."""
    if day_count >= limits.max_per_day:
        return f"daily limit of {limits.max_per_day} auto top-ups reached"
    if day_amount + amount > limits.max_amount_per_day:
        return (f"daily money limit of {limits.max_amount_per_day} would be exceeded "
                f"({day_amount} charged today)")
    return None


def backoff(base_seconds: int, failures: int) -> timedelta:
    """The wait after the ``failures``-th consecutive failure: base, 2x base, 4x base ...
    at most a week."""
    seconds = base_seconds * 2 ** min(max(failures - 1, 0), 32)
    cap = int(MAX_BACKOFF.total_seconds())
    return timedelta(seconds=seconds if seconds < cap else cap)


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def next_day_start(now: datetime) -> datetime:
    return datetime.combine(utc_day(now) + timedelta(days=1), time(0), tzinfo=UTC)


def charge_key(attempt_id: str, try_no: int) -> str:
    """Stripe's idempotency key of one try of one crossing's charge: a retry of the same
    try (Stripe unreachable, a crash before the outcome was recorded) replays Stripe's
    first answer instead of charging again."""
    return f"hopsplane:autotopup:{attempt_id}:{try_no}"


def require_terms(accepted: bool) -> None:
    if not accepted:
        raise Invalid("auto top-up charges your card without you being present: accept the "
                      "terms (accept_terms: true) to turn it on")
