"""Concurrent usage postings and expiry runs on one account: real threads on
real connections, each posting in its own transaction. Whatever the interleaving, the
grant is drawn at most its amount, never after its expiry, expired at most once and to
the cent, and the chain and the draws verify."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from hopsplane.credits import expiry, service
from hopsplane.credits.origins import OperatorGrant
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from tests.factories import make_user

T = datetime(2032, 6, 1, tzinfo=UTC)  # the grant's expiry on the fake clock
USERS, PER_USER, EXPIRERS = 8, 10, 4


def test_usage_and_expiry_runs_racing_on_one_account(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
        service.post(s, Posting(acct, EntryType.PURCHASE, Decimal("100.00"), "race-paid",
                                stripe_payment_intent_id="pi_race", at=T - timedelta(days=9)))
        grant = service.grant(s, acct, "30.00", reason="promo", origin=OperatorGrant("race"),
                              expires_at=T, now=T - timedelta(days=9)).entry
    barrier = threading.Barrier(USERS + EXPIRERS)
    expiries: list[Decimal] = []

    def use(i: int) -> None:
        barrier.wait()
        for j in range(PER_USER):
            # half before the expiry, half after it, in every order
            at = T + timedelta(minutes=(j - PER_USER // 2) * 7 + i)
            with fresh_db.transaction() as s:
                service.post(s, Posting(acct, EntryType.USAGE, Decimal("-0.75"),
                                        uuid.uuid4().hex, at=at))

    def expire(i: int) -> None:
        barrier.wait()
        for j in range(3):
            with fresh_db.transaction() as s:
                for r in expiry.expire_due(s, now=T + timedelta(hours=1, minutes=i + j)):
                    if r.entry.account_owner_id == acct:
                        expiries.append(r.entry.amount)

    with ThreadPoolExecutor(USERS + EXPIRERS) as pool:
        futures = [pool.submit(use, i) for i in range(USERS)]
        futures += [pool.submit(expire, i) for i in range(EXPIRERS)]
        for f in futures:
            f.result()

    with fresh_db.transaction() as s:
        report = service.verify(s, acct)
        assert report.ok, report.breaks
        drawn_by_usage = Decimal(s.execute(text(
            "SELECT COALESCE(sum(d.amount), 0) FROM hopsplane.credit_draws d "
            "JOIN credits_ledger b ON b.id = d.debit_entry_id "
            "WHERE d.credit_entry_id = :g AND b.type = 'usage'"), {"g": grant.id}).scalar_one())
        late = s.execute(text(
            "SELECT count(*) FROM hopsplane.credit_draws d "
            "JOIN credits_ledger b ON b.id = d.debit_entry_id "
            "WHERE d.credit_entry_id = :g AND b.type = 'usage' AND b.created_at >= :t"),
            {"g": grant.id, "t": T}).scalar_one()
        entries = s.execute(text(
            "SELECT type, amount FROM credits_ledger WHERE account_owner_id = :a "
            "AND type = 'expiry'"), {"a": acct}).all()
        balance = service.balance(s, acct)
    used = Decimal("0.75") * USERS * PER_USER
    assert late == 0
    assert drawn_by_usage <= Decimal("30.00")
    # one expiry, of exactly what usage left of the grant (none when usage took it all)
    assert [Decimal(a) for _, a in entries] == (
        [drawn_by_usage - Decimal("30.00")] if drawn_by_usage < Decimal("30.00") else [])
    assert expiries == [Decimal(a) for _, a in entries]
    assert balance == Decimal("130.00") - used + sum((Decimal(a) for _, a in entries),
                                                     Decimal(0))
