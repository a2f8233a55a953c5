"""Money arithmetic, defined once. Amounts are Decimal in Python and NUMERIC in SQL.

Rounding rule (docs/schema.md): a cost is computed exactly (units x unit price) and then
rounded to the cent half-up (half away from zero, which for costs, never negative, is the
same). PostgreSQL's ``round(numeric, 2)`` uses that rule, so ``usage_tracking.total_cost``
(a generated column) and :func:`cost_of` always agree.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from hopsplane.errors import Invalid

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14,2)


SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def display(amount: Decimal, currency: str) -> str:
    """How a person reads an amount: ``$1,234.50``, ``-€3.00``; a currency without a
    symbol here is written as its code (``1,234.50 SEK``). The console, its CSV exports and
    the CLI all write money this way."""
    text = f"{abs(amount):,.2f}"
    sign = "-" if amount < 0 else ""
    symbol = SYMBOLS.get(currency.lower())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


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


def _fixed_range(lo: int, hi: int, width: int) -> str:
    """A regex matching the ``width``-digit strings (leading zeros) of lo..hi."""
    if width == 0:
        return ""
    a, b = f"{lo:0{width}d}", f"{hi:0{width}d}"
    if a == b:
        return a
    if width == 1:
        return f"[{a}-{b}]"
    if a[0] == b[0]:
        return f"{a[0]}(?:{_fixed_range(int(a[1:]), int(b[1:]), width - 1)})"
    rest = width - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return f"[{a[0]}-{b[0]}][0-9]{{{rest}}}"
    parts = [f"{a[0]}(?:{_fixed_range(int(a[1:]), 10**rest - 1, rest)})"]
    if int(a[0]) + 1 <= int(b[0]) - 1:
        parts.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}][0-9]{{{rest}}}")
    parts.append(f"{b[0]}(?:{_fixed_range(0, int(b[1:]), rest)})")
    return "|".join(parts)


def digits_range(lo: int, hi: int) -> str:
    """A regex matching the decimal integers lo..hi written without leading zeros."""
    parts = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        first = max(lo, 10 ** (width - 1) if width > 1 else 0)
        last = min(hi, 10**width - 1)
        if first <= last:
            parts.append(f"(?:{_fixed_range(first, last, width)})")
    return "|".join(parts)


def amount_pattern(minimum: Decimal, maximum: Decimal) -> str:
    """The decimal strings :func:`parse_amount` accepts between ``minimum`` and ``maximum``
    (0 or more, whole cents), as a regular expression: so the OpenAPI description
    states the real bounds of a money field, not only its shape."""
    if not 0 <= minimum <= maximum <= MAX_AMOUNT:
        raise ValueError("amount_pattern covers bounds from 0 to MAX_AMOUNT")
    lo_whole, lo_cents = int(minimum), int((minimum - int(minimum)) * 100)
    hi_whole, hi_cents = int(maximum), int((maximum - int(maximum)) * 100)
    frac_any = r"(?:\.[0-9]{1,2}0*)?"

    def cents_between(lo: int, hi: int) -> str:
        # ".5" is 50 cents: the first digit is tens of cents
        two = "|".join(f"{c:02d}" for c in range(lo, hi + 1))
        ones = "|".join(str(c // 10) for c in range(lo, hi + 1) if c % 10 == 0)
        opts = f"(?:{two})" + (f"|(?:{ones})" if ones else "")
        return rf"\.(?:{opts})0*"

    def cents_part(lo: int, hi: int) -> str:
        if lo == 0 and hi == 99:
            return frac_any
        core = cents_between(max(lo, 1), hi) if hi >= max(lo, 1) else None
        zero = r"(?:\.0+)?" if lo == 0 else None
        if core is None:
            return zero or ""
        return f"(?:{core})" if zero is None else f"(?:{zero}|{core})"

    alternatives: list[str] = []
    if lo_whole == hi_whole:
        alternatives.append(f"(?:{lo_whole}){cents_part(lo_cents, hi_cents)}")
    else:
        alternatives.append(f"(?:{lo_whole}){cents_part(lo_cents, 99)}")
        if lo_whole + 1 <= hi_whole - 1:
            alternatives.append(f"(?:{digits_range(lo_whole + 1, hi_whole - 1)}){frac_any}")
        alternatives.append(f"(?:{hi_whole}){cents_part(0, hi_cents)}")
    body = "|".join(f"(?:{a})" for a in alternatives)
    # "0*" then a whole part without leading zeros: "0.50" is the whole part "0" after no
    # extra zeros, "007" is "7" after two
    return rf"^[ \t]*\+?0*(?:{body})[ \t]*$"


def amount_between(minimum: Decimal, maximum: Decimal) -> object:
    """An input amount that validation bounds to ``minimum``..``maximum`` (positive, whole
    cents), with the same bounds in its OpenAPI description: a pattern for the decimal
    string, minimum and maximum for the integer."""

    def check(value: object) -> Decimal:
        try:
            return parse_amount(value, minimum=minimum, maximum=maximum)
        except Invalid as exc:
            raise ValueError(exc.message) from exc

    whole_min = int(minimum) if minimum == int(minimum) else int(minimum) + 1
    return Annotated[
        Decimal,
        BeforeValidator(check),
        WithJsonSchema({
            "anyOf": [
                {"type": "string", "pattern": amount_pattern(minimum, maximum)},
                {"type": "integer", "minimum": whole_min, "maximum": int(maximum)},
            ],
            "description": f"Dollars from {minimum} to {maximum}, as a decimal string "
            "(\"12.50\": at most two decimals, no exponent) or an integer; floats are refused.",
            "examples": ["12.50"],
        }),
    ]


PositiveAmount: Any = amount_between(CENT, MAX_AMOUNT)
"""An amount that must be more than zero (grants, refunds, budgets)."""
