"""Pure rules of billing (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hopsplane.errors import Invalid
from hopsplane.money import cost_of

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


NOBODY_LABEL = "No member (unattributed, or a member who left)"
"""How usage that belongs to no current member is named wherever people are shown."""


def cost_parts(
    breakdown: dict[str, Decimal], unit_price: Decimal, total_cost: Decimal
) -> dict[str, Decimal]:
    """A day's cost by user id (``""``: nobody, when the day has no breakdown): each
    user's units at the day's price (the one rounding rule); the cents rounding leaves
    between the parts and the day's cost go to the largest part, so the parts add up to
    the day's cost exactly. The chart and the usage CSV both split days with this."""
    parts = {uid: cost_of(u, unit_price) for uid, u in breakdown.items() if u}
    if not parts:
        return {"": total_cost} if total_cost else {}
    gap = total_cost - sum(parts.values(), Decimal("0.00"))
    if gap:
        biggest = max(parts, key=lambda k: (parts[k], k))
        parts[biggest] += gap
    return parts


def member_share(
    breakdown: dict[str, object], member_id: str
) -> Decimal:
    """A member's units of one day (0 when they used nothing)."""
    raw = breakdown.get(member_id, 0)
    return Decimal(str(raw))


# --- member budgets ----------------------------------------------------------------------

BUDGET_THRESHOLDS: tuple[int, ...] = (80, 100)
"""Percentages of a member's monthly budget at which the owner and the member are told."""


def month_of(day: date) -> date:
    """The first day of ``day``'s calendar month (budgets run by UTC calendar month)."""
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def budget_thresholds_reached(spent: Decimal, budget: Decimal) -> tuple[int, ...]:
    """The thresholds (percent of the budget) that ``spent`` has reached."""
    return tuple(p for p in BUDGET_THRESHOLDS if spent * 100 >= budget * p)


def budget_notices_due(
    reached: tuple[int, ...], budget: Decimal, month: date,
    noticed: tuple[date | None, Decimal | None, int | None],
) -> tuple[int, ...]:
    """Of the thresholds ``reached`` this ``month``, those not announced yet: ``noticed``
    is (month, budget, percent) of the highest one announced. Another month or another
    budget amount re-arms every threshold."""
    month_noticed, budget_noticed, percent = noticed
    if month_noticed != month or budget_noticed != budget or percent is None:
        return reached
    return tuple(p for p in reached if p > percent)


def budget_stops(spent: Decimal, budget: Decimal, enforce: bool, still_member: bool) -> bool:
    """A member is stopped when enforcement is on and they have spent their whole budget
    this month (reaching it is enough: the budget is a cap, not a line to step over)."""
    return enforce and still_member and spent >= budget
