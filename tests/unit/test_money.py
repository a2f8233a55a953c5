from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopsplane.errors import Invalid
from hopsplane.money import cost_of, parse_amount, round_cents


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.005", "0.01"), ("0.004999", "0.00"), ("1.125", "1.13"), ("2.675", "2.68"), ("0", "0.00")],
)
def test_round_cents_is_half_up(value: str, expected: str) -> None:
    assert round_cents(Decimal(value)) == Decimal(expected)


def test_cost_of_uses_exact_product() -> None:
    # 12345 units at the plan's $0.0001 is 1.2345 -> 1.23; 12350 units is exactly 1.235 -> 1.24
    assert cost_of(Decimal("12345"), Decimal("0.0001")) == Decimal("1.23")
    assert cost_of(Decimal("12350"), Decimal("0.0001")) == Decimal("1.24")


@given(
    units=st.decimals(min_value=0, max_value=10**12, places=4, allow_nan=False),
    price=st.decimals(min_value=0, max_value=100, places=6, allow_nan=False),
)
def test_cost_is_never_more_than_half_a_cent_off(units: Decimal, price: Decimal) -> None:
    exact = units * price
    assert abs(cost_of(units, price) - exact) <= Decimal("0.005")
    assert cost_of(units, price) == cost_of(units, price).quantize(Decimal("0.01"))


@pytest.mark.parametrize(
    "bad",
    [0.1, True, "abc", "1.001", "NaN", "Infinity", "1e20", "", 129077251052067823196045312,
     "1e-30", "-1e40"],
)
def test_parse_amount_refuses_floats_and_sub_cents(bad: object) -> None:
    with pytest.raises(Invalid):
        parse_amount(bad)


@pytest.mark.parametrize(("raw", "expected"), [("12.5", "12.50"), (3, "3.00"), ("-0.01", "-0.01")])
def test_parse_amount_accepts_exact_cents(raw: object, expected: str) -> None:
    assert parse_amount(raw) == Decimal(expected)


@pytest.mark.parametrize("huge", ["1e40", 10**30, "129077251052067823196045312.5"])
def test_usage_quantities_out_of_range_are_refused_not_crashed(huge: object) -> None:
    from hopsplane.usage.rules import parse_quantity

    for exact in (True, False):
        with pytest.raises(Invalid, match="out of range"):
            parse_quantity(huge, "compute_units", exact_units=exact)
