"""Money arithmetic, defined once. Amounts are Decimal in Python and NUMERIC in SQL.

Rounding rule (docs/schema.md): a cost is computed exactly (units x unit price) and then
rounded to the cent half-up (half away from zero, which for costs, never negative, is the
same). PostgreSQL's ``round(numeric, 2)`` uses that rule, so ``usage_tracking.total_cost``
(a generated column) and :func:`cost_of` always agree.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from hopsplane.errors import Invalid

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14,2)


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cost_of(units: Decimal, unit_price: Decimal) -> Decimal:
    return round_cents(units * unit_price)


_AMOUNT_TEXT = re.compile(r"[ \t]*([+-]?)([0-9]+)(?:\.([0-9]+))?[ \t]*")
AMOUNT_PATTERN = r"^[ \t]*[+-]?0*[0-9]{1,12}(\.[0-9]{1,2}0*)?[ \t]*$"
"""What :func:`parse_amount` accepts as text, for the OpenAPI description of amounts."""
_MAX_WHOLE_DIGITS = 12  # NUMERIC(14,2)


def parse_amount(
    value: object,
    *,
    field: str = "amount",
    minimum: Decimal = -MAX_AMOUNT,
    maximum: Decimal = MAX_AMOUNT,
) -> Decimal:
    """The one parser of money (API, console and CLI): an exact amount in whole cents,
    given as a plain decimal string ("12.50") or an integer, within ``minimum`` and
    ``maximum`` (by default what a ledger amount, NUMERIC(14,2), holds).

    Everything is checked on the text or the integer before any Decimal arithmetic, so no
    input can raise ``decimal.Overflow`` or take long: exponents ("1e3"), NaN, infinities,
    floats, more than two decimals and values out of range are refused with Invalid.
    """
    if isinstance(value, float | bool):
        raise Invalid(f"{field} must be a decimal string or integer, not {type(value).__name__}")
    if isinstance(value, int):
        if not -_LIMIT_INT <= value <= _LIMIT_INT:
            raise Invalid(f"{field} is out of range (at most {MAX_AMOUNT})")
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() >= _MAX_WHOLE_DIGITS:
            raise Invalid(f"{field} must be a finite number of at most {MAX_AMOUNT}")
        amount = value
    elif isinstance(value, str):
        match = _AMOUNT_TEXT.fullmatch(value)
        if match is None:
            raise Invalid(
                f"{field} must be a plain decimal number such as 12.50 (no exponent, NaN or "
                f"infinity), got {value[:40]!r}"
            )
        whole, decimals = match.group(2).lstrip("0"), (match.group(3) or "").rstrip("0")
        if len(whole) > _MAX_WHOLE_DIGITS:
            raise Invalid(f"{field} is out of range (at most {MAX_AMOUNT})")
        if len(decimals) > 2:
            raise Invalid(
                f"{field} must be in whole cents (at most two decimals), got {value[:40]!r}"
            )
        amount = Decimal(f"{match.group(1)}{whole or '0'}.{decimals or '0'}")
    else:
        raise Invalid(f"{field} must be a decimal string or integer")
    if amount != amount.quantize(CENT, rounding=ROUND_HALF_UP):
        raise Invalid(f"{field} must be in whole cents (at most two decimals), got {amount}")
    if not minimum <= amount <= maximum:
        raise Invalid(f"{field} must be between {minimum} and {maximum}, got {amount}")
    return amount.quantize(CENT)


_LIMIT_INT = int(MAX_AMOUNT)


def _amount_field(value: object) -> Decimal:
    try:
        return parse_amount(value)
    except Invalid as exc:
        raise ValueError(exc.message) from exc


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount_field),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": AMOUNT_PATTERN},
            {"type": "integer", "minimum": -_LIMIT_INT, "maximum": _LIMIT_INT},
        ],
        "description": "Dollars as a decimal string (\"12.50\": at most two decimals, no "
        "exponent) or an integer; floats are refused.",
        "examples": ["12.50"],
    }),
]
"""An amount in an input schema: parsed by :func:`parse_amount` during validation."""
