"""The posting primitive and the database's own defence of the chain."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hopsplane.credits import service
from hopsplane.errors import Conflict, Invalid, NotFound
from tests.factories import make_user, post


def test_postings_keep_a_running_balance_in_sequence(session: Session) -> None:
    acct = make_user(session)
    a = post(session, acct, "purchase", "100.00", stripe_payment_intent_id="pi_1").entry
    b = post(session, acct, "usage", "-30.25").entry
    c = post(session, acct, "grant", "5.00").entry
    assert [(e.seq, e.balance) for e in (a, b, c)] == [
        (1, Decimal("100.00")), (2, Decimal("69.75")), (3, Decimal("74.75"))]
    assert service.balance(session, acct) == Decimal("74.75")
    assert service.verify(session, acct).ok


def test_a_replayed_key_returns_the_original_and_posts_nothing(session: Session) -> None:
    acct = make_user(session)
    first = post(session, acct, "grant", "10.00", key="grant-1")
    again = post(session, acct, "grant", "10.00", key="grant-1")
    assert first.created and not again.created
    assert again.entry.id == first.entry.id
    assert service.balance(session, acct) == Decimal("10.00")
    assert len(service.history(session, acct)) == 1


@pytest.mark.parametrize(
    ("entry_type", "amount", "other_account"),
    [("grant", "11.00", False), ("purchase", "10.00", False), ("grant", "10.00", True)],
)
def test_the_same_key_for_a_different_posting_is_a_conflict(
    session: Session, entry_type: str, amount: str, other_account: bool
) -> None:
    acct = make_user(session)
    post(session, acct, "grant", "10.00", key="k-conflict")
    target = make_user(session) if other_account else acct
    with pytest.raises(Conflict, match="already used"):
        post(session, target, entry_type, amount, key="k-conflict")


def test_only_usage_may_take_the_balance_below_zero(session: Session) -> None:
    acct = make_user(session)
    purchase = post(session, acct, "purchase", "10.00", stripe_payment_intent_id="pi_x").entry
    assert post(session, acct, "usage", "-15.00").entry.balance == Decimal("-5.00")
    with pytest.raises(Conflict, match="below zero"):
        post(session, acct, "refund", "-1.00", refund_of=purchase.id)
    # a grant on a negative balance is fine even if it stays negative
    assert post(session, acct, "grant", "2.00").entry.balance == Decimal("-3.00")


def test_refunds_reference_a_purchase_and_never_exceed_it(session: Session) -> None:
    acct = make_user(session)
    purchase = post(session, acct, "purchase", "50.00", stripe_payment_intent_id="pi_r").entry
    grant = post(session, acct, "grant", "50.00").entry
    with pytest.raises(Invalid, match="must reference"):
        post(session, acct, "refund", "-1.00")
    with pytest.raises(Invalid, match="only purchases"):
        post(session, acct, "refund", "-1.00", refund_of=grant.id)
    post(session, acct, "refund", "-30.00", refund_of=purchase.id)
    with pytest.raises(Conflict, match="exceeds what is left"):
        post(session, acct, "refund", "-20.01", refund_of=purchase.id)
    post(session, acct, "refund", "-20.00", refund_of=purchase.id)
    assert service.balance(session, acct) == Decimal("50.00")


def test_one_purchase_per_stripe_payment_intent(session: Session) -> None:
    acct = make_user(session)
    post(session, acct, "purchase", "10.00", stripe_payment_intent_id="pi_dup")
    with pytest.raises(Conflict, match="payment intent"):
        post(session, acct, "purchase", "10.00", stripe_payment_intent_id="pi_dup")


def test_members_and_unknown_accounts_hold_no_entries(session: Session) -> None:
    owner = make_user(session)
    member = make_user(session, owner=owner)
    with pytest.raises(Invalid, match="team member"):
        post(session, member, "grant", "1.00")
    with pytest.raises(NotFound):
        post(session, "auth0|nobody", "grant", "1.00")
    # both refusals came from the posting function's answer, not from a database error:
    # the transaction is still usable and nothing was written for either
    assert post(session, owner, "grant", "1.00").entry.balance == Decimal("1.00")
    assert session.execute(text(
        "SELECT count(*) FROM credits_ledger WHERE account_owner_id IN (:m, 'auth0|nobody')"
    ), {"m": member}).scalar_one() == 0


def test_history_is_newest_first_and_paginates(session: Session) -> None:
    acct = make_user(session)
    for i in range(7):
        post(session, acct, "grant", f"{i + 1}.00")
    page1 = service.history(session, acct, limit=3)
    page2 = service.history(session, acct, limit=3, before_seq=page1[-1].seq)
    page3 = service.history(session, acct, limit=3, before_seq=page2[-1].seq)
    assert [e.seq for e in page1 + page2 + page3] == [7, 6, 5, 4, 3, 2, 1]
    with pytest.raises(Invalid):
        service.history(session, acct, limit=0)


def _raw(session: Session, sql: str, **params: object) -> None:
    session.execute(text(sql), params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE credits_ledger SET description = 'edited' WHERE account_owner_id = :a",
        "DELETE FROM credits_ledger WHERE account_owner_id = :a",
        "TRUNCATE credits_ledger CASCADE",
    ],
)
def test_the_ledger_is_append_only(session: Session, statement: str) -> None:
    acct = make_user(session)
    post(session, acct, "grant", "1.00")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        _raw(session, statement, a=acct)


@pytest.mark.parametrize(
    ("seq", "prev_seq", "prev_balance", "amount", "balance", "constraint"),
    [
        (2, 1, "10.00", "5.00", "16.00", "credits_ledger_chain"),  # wrong sum
        (2, 1, "9.00", "5.00", "14.00", "credits_ledger_prev_fkey"),  # wrong predecessor
        (1, None, None, "5.00", "5.00", "credits_ledger_account_seq_key"),  # a fork
        (3, 2, "10.00", "5.00", "15.00", "credits_ledger_prev_fkey"),  # a gap
        (2, 1, "10.00", "-20.00", "-10.00", "credits_ledger_only_usage_overdraws"),
    ],
)
def test_the_database_refuses_a_broken_chain(
    session: Session, seq: int, prev_seq: int | None, prev_balance: str | None, amount: str,
    balance: str, constraint: str,
) -> None:
    acct = make_user(session)
    post(session, acct, "grant", "10.00")
    entry_type = "grant" if Decimal(amount) > 0 else "refund"
    refund_of = None if entry_type == "grant" else service.history(session, acct)[0].id
    with pytest.raises(DBAPIError, match=constraint), session.begin_nested():
        _raw(session,
             "INSERT INTO credits_ledger (account_owner_id, seq, prev_seq, prev_balance, amount, "
             "balance, type, idempotency_key, refund_of) VALUES (:a, :seq, :ps, :pb, :amount, "
             ":balance, :t, :k, :r)",
             a=acct, seq=seq, ps=prev_seq, pb=prev_balance, amount=amount, balance=balance,
             t=entry_type, k=uuid.uuid4().hex, r=refund_of)


def test_verify_finds_a_chain_a_superuser_broke(session: Session) -> None:
    acct = make_user(session)
    for amount in ("10.00", "20.00", "30.00"):
        post(session, acct, "grant", amount)
    assert service.verify(session, acct).ok
    # A superuser can switch off triggers and foreign keys; CHECKs still hold, so the
    # tampering has to keep each row self-consistent. verify must still see it.
    _raw(session, "SET LOCAL session_replication_role = replica")
    _raw(session, "UPDATE credits_ledger SET amount = amount + 1, balance = balance + 1 "
                  "WHERE account_owner_id = :a AND seq = 2", a=acct)
    _raw(session, "SET LOCAL session_replication_role = origin")
    report = service.verify(session, acct)
    assert not report.ok
    assert [(b.seq, b.problem) for b in report.breaks] == [
        (3, "balance 60.00 <> previous balance 31.00 + amount 30.00"),
        # the draws' bookkeeping (revision 0017) kept the amount the entry was posted with
        (2, "the lot does not match its ledger entry")]


def test_verify_finds_a_deleted_entry(session: Session) -> None:
    acct = make_user(session)
    for amount in ("10.00", "20.00", "30.00"):
        post(session, acct, "grant", amount)
    service.catch_up(session, [acct])  # drawn (revision 0023 draws lazily): entry 2 has a lot
    _raw(session, "SET LOCAL session_replication_role = replica")
    _raw(session, "DELETE FROM credits_ledger WHERE account_owner_id = :a AND seq = 2", a=acct)
    _raw(session, "SET LOCAL session_replication_role = origin")
    breaks = service.verify(session, acct).breaks
    assert [b.seq for b in breaks] == [3, 2]
    assert "sequence gap" in breaks[0].problem
    assert breaks[1].problem == "a lot without its ledger entry"
