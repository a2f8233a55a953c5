"""Pure rules of billing (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hopsplane.errors import Invalid

DEFAULT_UNIT_PRICE = Decimal("0.0001")
MAX_UNIT_PRICE = Decimal("0.009999")
"""The column (NUMERIC(12,6)) holds more; this is what keeps a day's cost within one ledger
amount: the fullest day (usage.rules.MAX_DAY_UNITS, 10^14 units) at this price costs
999,899,999,999.99, below a ledger entry's 999,999,999,999.99 (docs/schema.md)."""


def today_utc() -> date:
    return datetime.now(UTC).date()


def usage_description(day: date, units: Decimal, total: Decimal, billed_before: Decimal) -> str:
    if billed_before == 0:
        return f"usage {day.isoformat()}: {units.normalize():f} units, {total}"
    return (
        f"usage {day.isoformat()} (late): {units.normalize():f} units, {total} "
        f"of which {billed_before} was charged before"
    )


def parse_unit_price(value: object) -> Decimal:
    if isinstance(value, float | bool):
        raise Invalid("unit_price must be a decimal string, not a float")
    text = str(value).strip()
    if len(text) > 40:
        raise Invalid("unit_price must be a number such as 0.0001")
    try:
        price = Decimal(text)
    except ArithmeticError as exc:
        raise Invalid(f"unit_price must be a number such as 0.0001, got {value!r}") from exc
    if not price.is_finite() or price < 0 or price > MAX_UNIT_PRICE:
        raise Invalid(f"unit_price must be between 0 and {MAX_UNIT_PRICE}")
    if price != price.quantize(Decimal("0.000001")):
        raise Invalid("unit_price has at most six decimals")
    return price


def member_share(
    breakdown: dict[str, object], member_id: str
) -> Decimal:
    """A member's units of one day (0 when they used nothing)."""
    raw = breakdown.get(member_id, 0)
    return Decimal(str(raw))
