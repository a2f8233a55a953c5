"""Property test of the draw-down: for any interleaving of purchases, grants
with and without expiry, usage, refunds, expiry runs, disputes and won disputes on a fake
clock, the balance is purchases + grants - usage - refunds - expired - disputed +
reversed, no credit is drawn beyond its amount, no expiring grant is drawn at or after its
expiry (but by its own expiry), an expiry run leaves nothing of an expired grant, and
`credits verify` (the chain and the draws) passes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from hopsplane.credits import expiry
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict
from tests.factories import make_user

T0 = datetime(2031, 3, 1, tzinfo=UTC)
cents = st.integers(min_value=1, max_value=5000).map(lambda c: Decimal(c) / 100)


class Draws(RuleBasedStateMachine):
    db: Database

    def __init__(self) -> None:
        super().__init__()
        with self.db.transaction() as s:
            self.account = make_user(s)
        self.now = T0
        self.totals = dict.fromkeys(
            ("purchased", "granted", "used", "refunded", "expired", "disputed", "reversed"),
            Decimal(0))
        self.purchases: dict[uuid.UUID, tuple[str, Decimal]] = {}  # id -> (pi, left)
        self.disputes: list[tuple[uuid.UUID, str]] = []  # (entry id, dispute id) not reversed

    def _post(self, posting: Posting) -> Decimal:
        with self.db.transaction() as s:
            return credits.post(s, posting).entry.amount

    @rule(hours=st.integers(min_value=1, max_value=24 * 20))
    def advance(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(amount=cents)
    def purchase(self, amount: Decimal) -> None:
        pi = "pi_" + uuid.uuid4().hex
        with self.db.transaction() as s:
            entry = credits.post(s, Posting(self.account, EntryType.PURCHASE, amount,
                                            "p:" + pi, stripe_payment_intent_id=pi,
                                            at=self.now)).entry
        self.purchases[entry.id] = (pi, amount)
        self.totals["purchased"] += amount

    @rule(amount=cents, days=st.one_of(st.none(), st.integers(min_value=1, max_value=60)))
    def grant(self, amount: Decimal, days: int | None) -> None:
        expires = None if days is None else self.now + timedelta(days=days)
        with self.db.transaction() as s:
            credits.grant(s, self.account, amount, reason="promo",
                          origin=OperatorGrant(uuid.uuid4().hex), expires_at=expires,
                          now=self.now)
        self.totals["granted"] += amount

    @rule(amount=cents)
    def usage(self, amount: Decimal) -> None:
        self._post(Posting(self.account, EntryType.USAGE, -amount, uuid.uuid4().hex,
                           at=self.now))
        self.totals["used"] += amount

    @precondition(lambda self: any(left > 0 for _, left in self.purchases.values()))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        open_ = [(k, v) for k, v in self.purchases.items() if v[1] > 0]  # in posting order
        purchase_id, (pi, left) = data.draw(st.sampled_from(open_))
        amount = data.draw(st.integers(min_value=1, max_value=int(left * 100))) / Decimal(100)
        try:
            self._post(Posting(self.account, EntryType.REFUND, -amount, uuid.uuid4().hex,
                               stripe_payment_intent_id=pi, refund_of=purchase_id,
                               at=self.now))
        except Conflict:  # the balance cannot cover it: nothing posted
            return
        self.purchases[purchase_id] = (pi, left - amount)
        self.totals["refunded"] += amount

    @rule()
    def expire(self) -> None:
        with self.db.transaction() as s:
            posted = expiry.expire_due(s, now=self.now)
            again = expiry.expire_due(s, now=self.now)  # a retry in the same run: nothing
        assert again == []
        self.totals["expired"] -= sum((r.entry.amount for r in posted
                                       if r.entry.account_owner_id == self.account),
                                      Decimal(0))
        with self.db.transaction() as s:
            left = s.execute(text(
                "SELECT count(*) FROM hopsplane.credit_lots WHERE account_owner_id = :a "
                "AND expires_at <= :now AND open > 0"),
                {"a": self.account, "now": self.now}).scalar_one()
        assert left == 0

    @precondition(lambda self: bool(self.purchases))
    @rule(data=st.data(), amount=cents)
    def dispute(self, data: st.DataObject, amount: Decimal) -> None:
        pi, _ = data.draw(st.sampled_from(list(self.purchases.values())))
        dp = "dp_" + uuid.uuid4().hex
        with self.db.transaction() as s:
            entry = credits.post(s, Posting(self.account, EntryType.DISPUTE, -amount,
                                            "d:" + dp, stripe_payment_intent_id=pi,
                                            stripe_dispute_id=dp, at=self.now)).entry
        self.disputes.append((entry.id, dp))
        self.totals["disputed"] += amount

    @precondition(lambda self: bool(self.disputes))
    @rule(data=st.data())
    def win(self, data: st.DataObject) -> None:
        entry_id, dp = self.disputes.pop(data.draw(st.integers(0, len(self.disputes) - 1)))
        with self.db.transaction() as s:
            amount = credits.post(s, Posting(
                self.account, EntryType.DISPUTE_REVERSAL,
                -credits.entry_by_key(s, "d:" + dp).amount,  # type: ignore[union-attr]
                "w:" + dp, stripe_dispute_id=dp, refers_to=entry_id, at=self.now)).entry.amount
        self.totals["reversed"] += amount

    @invariant()
    def balance_is_the_sum_of_what_happened(self) -> None:
        t = self.totals
        expected = (t["purchased"] + t["granted"] - t["used"] - t["refunded"] - t["expired"]
                    - t["disputed"] + t["reversed"])
        with self.db.transaction() as s:
            assert credits.balance(s, self.account) == expected

    @invariant()
    def draws_respect_amounts_and_expiries_and_verify_passes(self) -> None:
        with self.db.transaction() as s:
            report = credits.verify(s, self.account)  # draws the account up to its head
            over = s.execute(text(
                """
                SELECT count(*) FROM credits_ledger c
                JOIN LATERAL (SELECT COALESCE(sum(amount), 0) AS drawn
                              FROM hopsplane.credit_draws WHERE credit_entry_id = c.id) d
                  ON true
                WHERE c.account_owner_id = :a AND c.amount > 0 AND d.drawn > c.amount
                """), {"a": self.account}).scalar_one()
            late = s.execute(text(
                """
                SELECT count(*) FROM hopsplane.credit_draws d
                JOIN credits_ledger c ON c.id = d.credit_entry_id
                JOIN credits_ledger b ON b.id = d.debit_entry_id
                WHERE c.account_owner_id = :a AND c.expires_at IS NOT NULL
                  AND b.type <> 'expiry' AND d.drawn_at >= c.expires_at
                """), {"a": self.account}).scalar_one()
        assert over == 0 and late == 0
        assert report.ok, report.breaks


@pytest.mark.slow  # a long property proof (state machine)
def test_draw_down_state_machine(fresh_db: Database) -> None:
    Draws.db = fresh_db
    run_state_machine_as_test(
        Draws,
        settings=settings(max_examples=20, stateful_step_count=15, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow]),
    )
