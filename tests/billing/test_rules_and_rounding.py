"""Pure rules of billing and enforcement, and the one rounding rule in SQL and Python."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from hopsplane.billing import service as billing
from hopsplane.billing.rules import MAX_UNIT_PRICE, parse_unit_price
from hopsplane.config import parse_thresholds
from hopsplane.credits.origins import UsageCharge
from hopsplane.credits.rules import notice_level, standing_may_change
from hopsplane.credits.service import ledger_key
from hopsplane.errors import Invalid
from hopsplane.money import cost_of
from tests.factories import make_user, upsert_usage, usage_row

T = (Decimal("10.00"), Decimal("1.00"), Decimal("0.00"))


def test_notice_level_is_the_lowest_threshold_at_or_above_the_balance() -> None:
    assert notice_level(Decimal("10.01"), T) is None
    assert notice_level(Decimal("10.00"), T) == Decimal("10.00")
    assert notice_level(Decimal("0.50"), T) == Decimal("1.00")
    assert notice_level(Decimal("-3"), T) == Decimal("0.00")


def test_thresholds_parse_sorted_and_refuse_junk() -> None:
    assert parse_thresholds("0, 10,1,1") == T
    with pytest.raises(Invalid):
        parse_thresholds("10,abc")


def test_standing_can_only_change_near_the_thresholds() -> None:
    assert not standing_may_change(Decimal("-1"), Decimal("50"), T)
    assert standing_may_change(Decimal("-1"), Decimal("10"), T)
    assert standing_may_change(Decimal("5"), Decimal("11"), T)  # came from 6: re-arms


def test_usage_keys_name_the_cumulative_charge() -> None:
    key = ledger_key(UsageCharge("a", date(2026, 1, 2), Decimal("1.23")))
    assert key == "usage:a:2026-01-02:123"


@pytest.mark.parametrize("bad", [0.1, "-0.0001", "0.0000001", "x", "1e9", "0.01", "1e999999999", "9" * 100])
def test_unit_prices_are_exact_and_bounded(bad: object) -> None:
    with pytest.raises(Invalid):
        parse_unit_price(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    units=st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False),
    price=st.decimals(min_value=0, max_value=MAX_UNIT_PRICE, places=6, allow_nan=False),
)
def test_sql_total_cost_equals_cost_of(session: Session, units: Decimal, price: Decimal) -> None:
    """The generated column and hopsplane.money.cost_of round the same way, also with a
    price that comes from an override."""
    owner = make_user(session)
    day = date(2026, 3, 1)
    billing.set_price_override(session, owner, day, price, reason="test")
    upsert_usage(session, owner, day, units)
    unit_price, total, billed = usage_row(session, owner, day)
    assert unit_price == price
    assert total == cost_of(units, price)
    assert billed == 0
