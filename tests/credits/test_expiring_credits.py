"""Promotional credit that expires, paid credit that never does: the draw-down
order, the expiry, the 7-day notice, and the database's own refusals."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hopsplane.credits import expiry, service
from hopsplane.credits import repository as repo
from hopsplane.credits.origins import OperatorGrant
from hopsplane.credits.schemas import LedgerEntryOut
from hopsplane.errors import Invalid
from tests.factories import make_user, post

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _grant(session: Session, acct: str, amount: str, expires: datetime | None,
           at: datetime = T0, key: str | None = None) -> LedgerEntryOut:
    return service.grant(
        session, acct, amount, reason="promo", origin=OperatorGrant(key or f"g{amount}{expires}"),
        expires_at=expires, now=at,
    ).entry





def _draws(session: Session, debit_id: object) -> dict[object, Decimal]:
    return {c: a for d, c, a in repo.draws_of(session, debit_id) if d == debit_id}  # type: ignore[arg-type]


def test_usage_draws_the_credit_that_expires_first_then_paid_credit(session: Session) -> None:
    acct = make_user(session)
    paid = post(session, acct, "purchase", "50.00", at=T0).entry
    late = _grant(session, acct, "20.00", T0 + timedelta(days=60))
    soon = _grant(session, acct, "10.00", T0 + timedelta(days=30))
    use = post(session, acct, "usage", "-25.00", at=T0 + timedelta(days=1)).entry
    assert _draws(session, use.id) == {soon.id: Decimal("10.00"), late.id: Decimal("15.00")}
    more = post(session, acct, "usage", "-10.00", at=T0 + timedelta(days=2)).entry
    assert _draws(session, more.id) == {late.id: Decimal("5.00"), paid.id: Decimal("5.00")}
    standing = service.standing(session, acct)
    assert standing.balance == Decimal("45.00") and standing.promotional == Decimal("0.00")
    assert service.verify(session, acct).ok


def test_an_expiry_removes_what_is_left_once_and_usage_never_draws_an_expired_grant(
    session: Session,
) -> None:
    acct = make_user(session)
    paid = post(session, acct, "purchase", "30.00", at=T0).entry
    promo = _grant(session, acct, "20.00", T0 + timedelta(days=10))
    post(session, acct, "usage", "-5.00", at=T0 + timedelta(days=1))
    # after the expiry but before the job ran: the grant is not drawable any more
    late_use = post(session, acct, "usage", "-4.00", at=T0 + timedelta(days=11)).entry
    assert _draws(session, late_use.id) == {paid.id: Decimal("4.00")}
    results = expiry.expire_due(session, now=T0 + timedelta(days=11, hours=1))
    mine = [r for r in results if r.entry.account_owner_id == acct]
    assert len(mine) == 1 and mine[0].entry.amount == Decimal("-15.00")
    assert mine[0].entry.type == "expiry" and mine[0].entry.refers_to == promo.id
    again = expiry.expire_due(session, now=T0 + timedelta(days=12))
    assert [r for r in again if r.entry.account_owner_id == acct] == []
    assert service.balance(session, acct) == Decimal("26.00")  # 30 + 20 - 5 - 4 - 15
    assert service.verify(session, acct).ok


def test_a_grant_drawn_completely_has_nothing_to_expire(session: Session) -> None:
    acct = make_user(session)
    _grant(session, acct, "5.00", T0 + timedelta(days=3))
    post(session, acct, "usage", "-8.00", at=T0 + timedelta(days=1))
    assert [r for r in expiry.expire_due(session, now=T0 + timedelta(days=4))
            if r.entry.account_owner_id == acct] == []
    assert service.balance(session, acct) == Decimal("-3.00")
    assert service.verify(session, acct).ok


def test_an_overdraft_is_covered_by_the_next_credit_so_a_later_expiry_is_exact(
    session: Session,
) -> None:
    acct = make_user(session)
    over = post(session, acct, "usage", "-7.00", at=T0).entry
    promo = _grant(session, acct, "10.00", T0 + timedelta(days=5))
    assert _draws(session, over.id) == {promo.id: Decimal("7.00")}
    results = expiry.expire_due(session, now=T0 + timedelta(days=5))
    assert [r.entry.amount for r in results if r.entry.account_owner_id == acct] == [
        Decimal("-3.00")]
    assert service.balance(session, acct) == Decimal("0.00")
    assert service.verify(session, acct).ok


def test_a_refund_draws_its_purchase_first(session: Session) -> None:
    acct = make_user(session)
    first = post(session, acct, "purchase", "40.00", stripe_payment_intent_id="pi_a", at=T0).entry
    second = post(session, acct, "purchase", "40.00", stripe_payment_intent_id="pi_b",
                  at=T0).entry
    post(session, acct, "usage", "-30.00", at=T0 + timedelta(hours=1))  # from `first`
    refund = post(session, acct, "refund", "-40.00", refund_of=second.id,
                  at=T0 + timedelta(hours=2)).entry
    assert _draws(session, refund.id) == {second.id: Decimal("40.00")}
    refund_first = post(session, acct, "refund", "-10.00", refund_of=first.id,
                        at=T0 + timedelta(hours=3)).entry
    assert _draws(session, refund_first.id) == {first.id: Decimal("10.00")}
    assert service.verify(session, acct).ok


def test_the_7_day_notice_is_queued_once_per_grant(session: Session) -> None:
    acct = make_user(session)
    promo = _grant(session, acct, "12.00", T0 + timedelta(days=10))
    assert expiry.notify_expiring(session, now=T0 + timedelta(days=2)) >= 0  # not due yet
    rows = lambda: session.execute(text(  # noqa: E731
        "SELECT args ->> 'kind', CAST(args -> 'payload' ->> 'amount' AS numeric), "
        "CAST(args -> 'payload' ->> 'expires_at' AS timestamptz), "
        "CAST(args -> 'payload' ->> 'ledger_seq' AS bigint) FROM hopsplane.jobs "
        "WHERE task = 'notices.send' AND args ->> 'account' = :a "
        "AND args ->> 'kind' = 'credits_expiring'"), {"a": acct}).all()
    assert rows() == []
    expiry.notify_expiring(session, now=T0 + timedelta(days=3, seconds=1))
    expiry.notify_expiring(session, now=T0 + timedelta(days=4))
    assert rows() == [("credits_expiring", Decimal("12.00"), promo.expires_at, promo.seq)]


def test_balance_views_show_the_promotional_part(session: Session) -> None:
    acct = make_user(session)
    post(session, acct, "purchase", "5.00")
    far = datetime.now(UTC) + timedelta(days=400)
    _grant(session, acct, "3.00", far, at=datetime.now(UTC) - timedelta(seconds=5))
    standing = service.standing(session, acct)
    assert standing.promotional == Decimal("3.00")
    assert [(g.amount, g.expires_at) for g in standing.promotional_grants] == [
        (Decimal("3.00"), far)]


@pytest.mark.parametrize("expires", [T0 - timedelta(days=1), T0, datetime(2031, 1, 1),
                                     T0 + timedelta(days=4000)])
def test_a_grant_refuses_an_expiry_that_is_not_in_the_future(
    session: Session, expires: datetime
) -> None:
    acct = make_user(session)
    with pytest.raises(Invalid):
        _grant(session, acct, "1.00", expires)
    assert service.balance(session, acct) == Decimal("0.00")


def _raw(session: Session, sql: str, **params: object) -> None:
    session.execute(text(sql), params)


def test_the_database_refuses_a_draw_of_an_expired_credit_or_beyond_its_amount(
    session: Session,
) -> None:
    acct = make_user(session)
    promo = _grant(session, acct, "5.00", T0 + timedelta(days=1))
    early = post(session, acct, "usage", "-1.00", at=T0 + timedelta(hours=1)).entry
    assert _draws(session, early.id) == {promo.id: Decimal("1.00")}
    late = post(session, acct, "usage", "-1.00", at=T0 + timedelta(days=2)).entry
    assert _draws(session, late.id) == {}  # nothing drawable: an overdraft, for now
    insert = ("INSERT INTO hopsplane.credit_draws (debit_entry_id, credit_entry_id, amount, "
              "drawn_at) VALUES (:d, :c, :a, now())")
    with pytest.raises(DBAPIError, match="credit_draws_not_expired"), \
            session.begin_nested():
        _raw(session, insert, d=late.id, c=promo.id, a=Decimal("1.00"))
    paid = post(session, acct, "purchase", "100.00", at=T0 + timedelta(days=2)).entry
    assert _draws(session, late.id) == {paid.id: Decimal("1.00")}  # covered by the next credit
    other = post(session, acct, "usage", "-1.00", at=T0 + timedelta(days=3)).entry
    with pytest.raises(DBAPIError, match="credit_lots_open_within_amount"), \
            session.begin_nested():
        _raw(session, insert, d=other.id, c=paid.id, a=Decimal("500.00"))
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        _raw(session, "DELETE FROM hopsplane.credit_draws WHERE debit_entry_id = :d",
             d=early.id)


def test_the_database_refuses_an_expiry_before_its_time_or_of_part_of_a_grant(
    session: Session,
) -> None:
    acct = make_user(session)
    promo = _grant(session, acct, "5.00", T0 + timedelta(days=1))
    for at, amount, constraint in [
        (T0 + timedelta(hours=1), "-5.00", "credit_draws_not_expired"),
        (T0 + timedelta(days=2), "-2.00", "credits_ledger_expiry_all"),
        (T0 + timedelta(days=2), "-6.00", "credit_lots_open_within_amount"),
    ]:
        with pytest.raises(DBAPIError, match=constraint), session.begin_nested():
            post(session, acct, "expiry", amount, refers_to=promo.id, at=at)
    paid = post(session, acct, "purchase", "3.00", at=T0).entry
    with pytest.raises(DBAPIError, match="credits_ledger_reference_matches"), \
            session.begin_nested():
        post(session, acct, "expiry", "-3.00", refers_to=paid.id, at=T0 + timedelta(days=2))
    assert service.verify(session, acct).ok
