"""Pure rules of auto top-up."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from hopsplane.errors import Invalid
from hopsplane.payments.autotopup.rules import (
    Limits,
    backoff,
    cap_refusal,
    next_day_start,
    validate_settings,
    wants_topup,
)

LIMITS = Limits(max_per_day=2, max_amount_per_day=Decimal("100.00"), max_failures=3,
                backoff_seconds=60)


def test_a_posting_that_leaves_the_balance_below_the_threshold_wants_a_topup() -> None:
    assert wants_topup(Decimal("19.99"), Decimal("20.00"))  # a crossing
    assert wants_topup(Decimal("10.00"), Decimal("20.00"))  # already below before it
    assert wants_topup(Decimal("-5.00"), Decimal("0.00"))
    assert not wants_topup(Decimal("20.00"), Decimal("20.00"))  # at, not below


def test_caps_count_then_money() -> None:
    assert cap_refusal(1, Decimal("50.00"), Decimal("50.00"), LIMITS) is None
    assert "2 auto top-ups" in (cap_refusal(2, Decimal(0), Decimal("1.00"), LIMITS) or "")
    assert "money limit" in (cap_refusal(1, Decimal("60.00"), Decimal("50.00"), LIMITS) or "")


def test_backoff_doubles_and_is_bounded() -> None:
    assert [backoff(60, n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (60, 120, 240)]
    assert backoff(3600, 40) == timedelta(days=7)


def test_the_next_day_starts_at_utc_midnight() -> None:
    now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert next_day_start(now) == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("threshold,amount", [("-1", "50"), ("20", "0"), ("20", "1e3"),
                                              ("20", "99999"), ("NaN", "50")])
def test_bad_settings_are_refused(threshold: str, amount: str) -> None:
    with pytest.raises(Invalid):
        validate_settings(threshold, amount, Decimal("5.00"), Decimal("5000.00"))


def test_the_hooks_every_edge_builds_watch_balances() -> None:
    """The billing run posts usage with the hooks of composition: they must be the ones
    that start auto top-ups, or crossings would go unnoticed (a silent stop)."""
    from hopsplane.composition.hooks import build_account_hooks
    from hopsplane.composition.jobs import handlers
    from hopsplane.config import Settings
    from hopsplane.notices import service as notices
    from hopsplane.payments.autotopup import service as autotopup

    hooks = build_account_hooks(Settings(_env_file=None))  # type: ignore[call-arg]
    assert hooks.listeners.balance_drop == [autotopup.observe]
    assert {autotopup.CHARGE_TASK, notices.SEND_TASK, autotopup.FAILED_TASK} <= set(
        handlers())
