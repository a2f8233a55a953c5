"""Ledger idempotency keys are made in one place from a typed origin, and two origins can
never make the same key, whatever a person supplied."""

from __future__ import annotations

import typing
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopsplane.credits import origins
from hopsplane.credits.service import ledger_key
from hopsplane.errors import Invalid

text = st.text(min_size=1, max_size=80).filter(lambda s: s == s.strip())
origin = st.one_of(
    st.builds(origins.StripePurchase, text),
    st.builds(origins.StripeRefund, text, st.integers(0, 10**9)),
    st.builds(
        origins.UsageCharge, text, st.dates(),
        st.decimals(0, 10**6, places=2, allow_nan=False, allow_infinity=False),
    ),
    st.builds(origins.OperatorGrant, text),
    st.builds(origins.OperatorRefund, text),
    st.builds(origins.AdminGrant, text),
    st.builds(origins.AdminRefund, text),
    st.builds(origins.LegacyBalance, text, text),
)


def test_every_origin_has_a_namespace_and_no_namespace_begins_another() -> None:
    assert set(origins.PREFIXES) == set(typing.get_args(origins.Origin))
    prefixes = list(origins.PREFIXES.values())
    for a in prefixes:
        for b in prefixes:
            assert a == b or not b.startswith(a), (a, b)


@given(origin, origin)
def test_keys_of_two_origins_never_meet(a: origins.Origin, b: origins.Origin) -> None:
    if type(a) is not type(b):
        assert ledger_key(a) != ledger_key(b)


@given(text)
def test_an_operator_key_that_looks_like_a_stripe_key_stays_an_operator_key(key: str) -> None:
    for intent in (key, key.removeprefix("stripe:purchase:")):
        assert ledger_key(origins.OperatorGrant(key)) != ledger_key(origins.StripePurchase(intent))
    assert ledger_key(origins.OperatorGrant("stripe:purchase:pi_123")) == (
        "operator:grant:stripe:purchase:pi_123"
    )


def test_known_keys_keep_their_form() -> None:
    """Keys already in ledgers must keep deduplicating: the system origins' keys are those
    the ledger always used."""
    assert ledger_key(origins.StripePurchase("pi_1")) == "stripe:purchase:pi_1"
    assert ledger_key(origins.StripeRefund("pi_1", 500)) == "stripe:refund:pi_1:500"
    assert ledger_key(origins.UsageCharge("a", date(2026, 1, 2), Decimal("1.23"))) == (
        "usage:a:2026-01-02:123"
    )
    assert ledger_key(origins.AdminGrant("k")) == "admin-grant:k"


@pytest.mark.parametrize("bad", ["", " k", "k ", "x" * 250])
def test_supplied_keys_must_be_usable(bad: str) -> None:
    with pytest.raises(Invalid):
        ledger_key(origins.OperatorGrant(bad))
