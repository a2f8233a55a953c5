from decimal import Decimal

import pytest

from hopsplane.credits.rules import EntryType, parse_entry_type, validate_posting, would_overdraw
from hopsplane.errors import Invalid


@pytest.mark.parametrize(
    ("entry_type", "amount"),
    [
        (EntryType.PURCHASE, "10.00"),
        (EntryType.GRANT, "0.01"),
        (EntryType.REFUND, "-5.00"),
        (EntryType.USAGE, "-0.01"),
    ],
)
def test_signs_that_match_the_type_pass(entry_type: EntryType, amount: str) -> None:
    assert validate_posting(entry_type, Decimal(amount), "k") == Decimal(amount)


@pytest.mark.parametrize(
    ("entry_type", "amount"),
    [
        (EntryType.PURCHASE, "-10.00"),
        (EntryType.GRANT, "-1"),
        (EntryType.REFUND, "5.00"),
        (EntryType.USAGE, "1"),
        (EntryType.USAGE, "0"),
        (EntryType.GRANT, "0.001"),
    ],
)
def test_wrong_signs_zero_and_sub_cents_are_refused(entry_type: EntryType, amount: str) -> None:
    with pytest.raises(Invalid):
        validate_posting(entry_type, Decimal(amount), "k")


@pytest.mark.parametrize("key", ["", " k", "k ", "x" * 256])
def test_bad_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(Invalid):
        validate_posting(EntryType.GRANT, Decimal("1"), key)


def test_only_usage_may_overdraw() -> None:
    assert not would_overdraw(EntryType.USAGE, Decimal("-10"), Decimal("1"))
    assert would_overdraw(EntryType.REFUND, Decimal("-10"), Decimal("1"))
    assert not would_overdraw(EntryType.REFUND, Decimal("-1"), Decimal("1"))
    assert not would_overdraw(EntryType.GRANT, Decimal("1"), Decimal("-50"))


def test_unknown_entry_type_names_the_allowed_ones() -> None:
    with pytest.raises(Invalid, match="purchase, grant, refund, usage"):
        parse_entry_type("bonus")
