"""The patterns the OpenAPI spec gives for money, prices, quantities, ports and export days
accept exactly what validation accepts: a client that follows the spec is never refused,
and the spec never promises what validation refuses."""

from __future__ import annotations

import random
import re
from datetime import date
from decimal import Decimal

import pytest

from hopsplane.api.routers.admin_credits import UNIT_PRICE
from hopsplane.billing.rules import parse_unit_price
from hopsplane.errors import Invalid
from hopsplane.fields import HTTP_URL_PATTERN
from hopsplane.http.exports import EXPORT_DAY, FIRST_DAY, LAST_DAY
from hopsplane.money import MAX_AMOUNT, amount_pattern, digits_range, parse_amount


def accepts(parse: object, text: str) -> bool:
    try:
        parse(text)  # type: ignore[operator]
    except Invalid:
        return False
    return True


def amount_texts(rnd: random.Random) -> list[str]:
    fixed = ["0", "0.00", "0.01", "0.1", ".5", "1", "9.99", "10", "10.0", "10.001", "10000",
             "10000.00", "10000.01", "+12.5", " 12 ", "0012.50", "1e3", "-1", "00", "0.990",
             "999999999999.99", "1000000000000", "4.99", "500.01", "1234.56", "1234.57"]
    drawn = [f"{rnd.randint(0, 10 ** rnd.randint(1, 13))}.{rnd.randint(0, 99):02d}"
             for _ in range(3000)]
    drawn += [str(rnd.randint(0, 20000)) for _ in range(1000)]
    drawn += [f"{rnd.randint(0, 2000)}.{rnd.randint(0, 9)}" for _ in range(1000)]
    return fixed + drawn


@pytest.mark.parametrize("bounds", [
    ("0.01", str(MAX_AMOUNT)), ("10.00", "10000.00"), ("0.00", "10000.00"),
    ("1.50", "1234.56"), ("0.01", "0.99"),
])
def test_an_amount_pattern_matches_what_parse_amount_takes_within_its_bounds(
    bounds: tuple[str, str],
) -> None:
    low, high = Decimal(bounds[0]), Decimal(bounds[1])
    pattern = re.compile(amount_pattern(low, high))
    for text in amount_texts(random.Random(7)):
        taken = accepts(lambda t: parse_amount(t, minimum=low, maximum=high), text)
        assert taken == bool(pattern.match(text)), (bounds, text)


def test_digit_ranges_are_exact() -> None:
    for low, high in [(0, 65535), (1, 2**63 - 1), (10, 10000), (7, 7), (100, 998)]:
        pattern = re.compile(f"^(?:{digits_range(low, high)})$")
        rnd = random.Random(low)
        for n in [low, high, low - 1, high + 1, *(rnd.randint(0, high * 2) for _ in range(3000))]:
            if n >= 0:
                assert bool(pattern.match(str(n))) == (low <= n <= high), (low, high, n)
        assert not pattern.match(f"0{low}") or low == 0


def test_the_unit_price_pattern_is_what_parse_unit_price_takes() -> None:
    rnd = random.Random(3)
    texts = ["0", "0.", ".0", "0.009999", "0.0099990", "0.01", "0.0000001", "+0.001", ".5"]
    texts += ["0." + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 9)))
              for _ in range(5000)]
    texts += ["0.00" + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 6)))
              for _ in range(5000)]
    pattern = re.compile(UNIT_PRICE)
    for text in texts:
        assert accepts(parse_unit_price, text) == bool(pattern.match(text)), text


def test_a_cluster_url_port_is_0_to_65535() -> None:
    pattern = re.compile(HTTP_URL_PATTERN)
    for port in range(0, 70000, 7):
        assert bool(pattern.match(f"http://hw.example.com:{port}/api")) == (port <= 65535)
    for refused in ("ftp://a", "http://u:p@a", "http://a?x=1", "https://"):
        assert not pattern.match(refused)


def test_the_export_day_pattern_is_first_day_to_last_day() -> None:
    pattern = re.compile(str(EXPORT_DAY["pattern"]))
    for year in range(1, 10000):
        for day in (date(year, 1, 1), date(year, 12, 31)):
            assert bool(pattern.match(day.isoformat())) == (FIRST_DAY <= day <= LAST_DAY)
