"""The console's usage chart and number formats (pure: no database)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hopsplane.billing.schemas import UsageDay
from hopsplane.web import charts


def day(d: date, price: str, breakdown: dict[str, str], cost: str) -> UsageDay:
    units = {k: Decimal(v) for k, v in breakdown.items()}
    return UsageDay(date=d, compute_units=sum(units.values(), Decimal(0)),
                    unit_price=Decimal(price), total_cost=Decimal(cost),
                    billed_amount=Decimal(cost), user_breakdown=units)


def test_each_bar_adds_up_to_the_days_cost_even_when_rounding_splits_cents() -> None:
    # three members of 1/3 each: 0.33 + 0.33 + 0.33 is a cent short of the day's 1.00
    d = day(date(2026, 1, 1), "0.0001", {"a": "3333.3333", "b": "3333.3333", "c": "3333.3334"},
            "1.00")
    chart = charts.build([d], {"a": "A", "b": "B", "c": "C"}, "usd", d.date, d.date)
    (bar,) = chart.bars
    assert bar.total == Decimal("1.00")
    assert sum(s.cost for s in bar.segments) == Decimal("1.00")
    assert sorted(s.label for s in bar.segments) == ["A", "B", "C"]


def test_two_hundred_members_over_a_year_stay_readable() -> None:
    first = date(2025, 1, 1)
    people = {f"u{i}": f"user{i}@example.com" for i in range(200)}
    days = [day(first + timedelta(days=n), "0.0001",
                {f"u{i}": str(100 * (i + 1)) for i in range(200)}, "201.00")
            for n in range(365)]
    chart = charts.build(days, people, "usd", first, first + timedelta(days=364))
    assert len(chart.series) == charts.TOP + 1 and chart.series[-1] == charts.OTHERS
    assert chart.series[0] == "user199@example.com"  # the costliest first
    assert len(chart.bars) == 365 and len(chart.dates) <= 6
    assert all(len(b.segments) == charts.TOP + 1 for b in chart.bars)
    assert all(sum(s.cost for s in b.segments) == b.total == Decimal("201.00")
               for b in chart.bars)
    assert chart.total == Decimal("201.00") * 365
    right = max(s.x + s.width for b in chart.bars for s in b.segments)
    assert right <= chart.width  # every bar inside the picture


def test_usage_of_nobody_known_is_labelled_so_never_by_id() -> None:
    d = day(date(2026, 1, 2), "0.0001", {"auth0|gone": "10000", "a": "10000"}, "2.00")
    chart = charts.build([d], {"a": "Ann (ann@example.com)"}, "eur", d.date, d.date)
    assert set(chart.series) == {"Ann (ann@example.com)", charts.NOBODY}
    assert not any("auth0|gone" in s for s in chart.series)


def test_formats_and_runway() -> None:
    assert charts.money(Decimal("1234.5"), "usd") == "$1,234.50"
    assert charts.money(Decimal("-3"), "chf") == "-3.00 CHF"
    assert charts.units(Decimal("160000")) == charts.units(Decimal("160000.0000")) == "160,000.00"
    assert charts.cpu_hours(Decimal("160000")) == "16.00"
    assert charts.runway(Decimal("100.00"), Decimal("0.00"), 7).days is None
    r = charts.runway(Decimal("100.00"), Decimal("70.00"), 7)
    assert (r.per_day, r.days) == (Decimal("10.00"), 10)
    assert charts.runway(Decimal("-5.00"), Decimal("7.00"), 7).days == 0
