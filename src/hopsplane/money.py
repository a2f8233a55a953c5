"""Money arithmetic, defined once. Amounts are Decimal in Python and NUMERIC in SQL.

Rounding rule (docs/schema.md): a cost is computed exactly (units x unit price) and then
rounded to the cent half-up (half away from zero, which for costs, never negative, is the
same). PostgreSQL's ``round(numeric, 2)`` uses that rule, so ``usage_tracking.total_cost``
(a generated column) and :func:`cost_of` always agree.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hopsplane.errors import Invalid

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14,2)


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cost_of(units: Decimal, unit_price: Decimal) -> Decimal:
    return round_cents(units * unit_price)


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """An exact amount in whole cents. Floats are refused: they cannot say 0.1 exactly."""
    if isinstance(value, float | bool):
        raise Invalid(f"{field} must be a decimal string or integer, not {type(value).__name__}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise Invalid(f"{field} must be a number such as 12.50, got {value!r}") from exc
    if not amount.is_finite():
        raise Invalid(f"{field} must be a finite number")
    if abs(amount) > MAX_AMOUNT:  # before quantize, which cannot hold huge numbers
        raise Invalid(f"{field} is out of range (at most {MAX_AMOUNT})")
    if amount != amount.quantize(CENT, rounding=ROUND_HALF_UP):
        raise Invalid(f"{field} must be in whole cents (at most two decimals), got {amount}")
    return amount.quantize(CENT)
