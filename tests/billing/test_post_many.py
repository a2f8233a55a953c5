"""The set-based posting path and the standing every posting keeps up to date."""

from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from hopsplane.credits import service
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.errors import Conflict, Invalid, NotFound
from tests.factories import make_user, post


def _usage(account: str, amount: str, key: str) -> Posting:
    return Posting(account, EntryType.USAGE, Decimal(amount), key, description="usage")


def test_post_many_chains_several_entries_per_account(session: Session) -> None:
    a, b = make_user(session), make_user(session)
    post(session, a, "grant", "20.00")
    result = service.post_many(
        session,
        [_usage(a, "-3.00", "k1"), _usage(b, "-1.50", "k2"), _usage(a, "-4.00", "k3"),
         Posting(b, EntryType.GRANT, Decimal("5.00"), "k4")],
    )
    assert (result.created, result.replayed) == (4, 0)
    assert service.balance(session, a) == Decimal("13.00")
    assert service.balance(session, b) == Decimal("3.50")
    assert [e.seq for e in service.history(session, a)] == [3, 2, 1]
    assert service.verify(session).ok


def test_post_many_replays_known_keys_and_refuses_changed_ones(session: Session) -> None:
    a = make_user(session)
    service.post_many(session, [_usage(a, "-1.00", "r1"), _usage(a, "-2.00", "r2")])
    again = service.post_many(
        session, [_usage(a, "-1.00", "r1"), _usage(a, "-2.00", "r2"), _usage(a, "-4.00", "r3")]
    )
    assert (again.created, again.replayed) == (1, 2)
    assert service.balance(session, a) == Decimal("-7.00")
    with pytest.raises(Conflict):
        service.post_many(session, [_usage(a, "-9.00", "r1")])
    assert service.verify(session).ok


def test_post_many_refuses_bad_input_before_writing(session: Session) -> None:
    a = make_user(session)
    member = make_user(session, owner=a)
    with pytest.raises(Invalid):
        service.post_many(session, [_usage(a, "1.00", "x")])
    with pytest.raises(NotFound):
        service.post_many(session, [_usage("nobody", "-1.00", "y")])
    with pytest.raises(Invalid, match="team member"):
        service.post_many(session, [_usage(member, "-1.00", "z")])
    assert service.history(session, a) == []


def test_crossing_thresholds_notifies_once_and_suspends_then_resumes(session: Session) -> None:
    a = make_user(session)
    assert post(session, a, "grant", "12.00").events == ()  # above every threshold
    kinds = lambda r: [(e.kind, e.threshold) for e in r.events]  # noqa: E731
    assert kinds(post(session, a, "usage", "-3.00")) == [("low_balance", Decimal("10.00"))]
    assert kinds(post(session, a, "usage", "-1.00")) == []  # still under 10: no new notice
    assert kinds(post(session, a, "usage", "-7.50")) == [("low_balance", Decimal("1.00"))]
    r = post(session, a, "usage", "-1.00")
    assert sorted(kinds(r), key=str) == sorted(
        [("low_balance", Decimal("0.00")), ("suspended", None)], key=str
    )
    assert service.standing(session, a).suspended
    assert kinds(post(session, a, "usage", "-1.00")) == []  # suspended once
    assert kinds(post(session, a, "grant", "1.00")) == []  # still at zero: suspended
    assert kinds(post(session, a, "grant", "5.00")) == [("resumed", None)]
    assert not service.standing(session, a).suspended
    # back under 1 after a rise above it: a new crossing, a new notice
    assert kinds(post(session, a, "usage", "-4.00")) == [("low_balance", Decimal("1.00"))]
