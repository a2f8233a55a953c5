"""Pure rules of payments (no database, no Stripe)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopsplane.credits.origins import StripeRefund
from hopsplane.credits.service import ledger_key
from hopsplane.errors import Invalid
from hopsplane.integrations.stripe import CheckoutSession, PaymentIntentState, mode_of_key
from hopsplane.payments import rules


def _cs(**kw: object) -> CheckoutSession:
    base: dict[str, object] = dict(
        id="cs_1", url=None, status="complete", payment_status="paid", mode="payment",
        payment_intent_id="pi_1", client_reference_id="auth0|a",
        metadata={"hopsplane_account": "auth0|a"}, amount_total=1234, currency="usd",
        livemode=False)
    base.update(kw)
    return CheckoutSession(**base)  # type: ignore[arg-type]


def test_modes_follow_the_key() -> None:
    assert mode_of_key("sk_test_abc") == "test" and mode_of_key("rk_test_abc") == "test"
    assert mode_of_key("sk_live_abc") == "live" and mode_of_key("rk_live_abc") == "live"


@given(st.integers(min_value=1, max_value=10**12))
def test_minor_units_round_trip_exactly(minor: int) -> None:
    assert rules.to_minor(rules.from_minor(minor, "usd"), "usd") == minor
    assert rules.from_minor(minor, "jpy") == Decimal(minor)


def test_topup_amounts_must_be_in_range_and_whole_cents() -> None:
    lo, hi = Decimal("10.00"), Decimal("100.00")
    assert rules.validate_topup("10", lo, hi, "usd") == Decimal("10.00")
    assert rules.validate_topup(100, lo, hi, "usd") == Decimal("100.00")
    for bad in ("9.99", "100.01", "10.001", 12.5, "x", True):
        with pytest.raises(Invalid):
            rules.validate_topup(bad, lo, hi, "usd")
    with pytest.raises(Invalid, match="minor units"):
        rules.validate_topup("10.50", lo, hi, "jpy")


def test_a_paid_session_is_a_payment_an_unpaid_one_is_not_yet() -> None:
    payment = rules.payment_from_checkout(_cs(), "usd")
    assert payment is not None
    assert (payment.account_owner_id, payment.payment_intent_id, payment.amount) == (
        "auth0|a", "pi_1", Decimal("12.34"))
    assert rules.payment_from_checkout(_cs(payment_status="unpaid"), "usd") is None


@pytest.mark.parametrize("change", [
    {"currency": "eur"}, {"payment_intent_id": None}, {"amount_total": None},
    {"mode": "subscription"}, {"metadata": {}, "client_reference_id": None},
    {"client_reference_id": "auth0|b"},
])
def test_sessions_that_cannot_be_credited_are_invalid(change: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        rules.payment_from_checkout(_cs(**change), "usd")


def test_a_payment_intent_must_have_succeeded() -> None:
    pi = PaymentIntentState("pi_1", "processing", 500, None, "usd",
                            {"hopsplane_account": "auth0|a"}, False)
    with pytest.raises(Invalid, match="not succeeded"):
        rules.payment_from_intent(pi, "usd")
    ok = PaymentIntentState("pi_1", "succeeded", 500, 500, "usd",
                            {"hopsplane_account": "auth0|a"}, False)
    assert rules.payment_from_intent(ok, "usd").amount == Decimal("5.00")


def test_refunds_owe_the_cumulative_difference() -> None:
    assert rules.refund_due(3000, Decimal("0"), "usd") == Decimal("30.00")
    assert rules.refund_due(5000, Decimal("30.00"), "usd") == Decimal("20.00")
    assert rules.refund_due(3000, Decimal("30.00"), "usd") == 0
    assert rules.refund_due(1000, Decimal("30.00"), "usd") == Decimal("-20.00")
    assert ledger_key(StripeRefund("pi_1", 5000)) != ledger_key(StripeRefund("pi_1", 3000))
