"""Property tests: random purchases, grants, refunds, usage, late usage and billing runs
always leave a verified chain, a balance equal to purchases + grants - refunds - charged
usage, charged usage equal to the sum of the rounded daily costs, one notice per
downward threshold crossing, and one hook call per suspension or resumption."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from hopsplane.billing.run import run_billing
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminRefund
from hopsplane.credits.rules import DEFAULT_THRESHOLDS, EntryType, notice_level
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict
from hopsplane.integrations.email import LogMailer
from hopsplane.money import cost_of
from tests.factories import RecordingHooks, make_user, upsert_usage

DAY0 = date(2026, 11, 1)
PRICE = Decimal("0.0001")
cents = st.integers(min_value=1, max_value=3000).map(lambda c: Decimal(c) / 100)


class Billing(RuleBasedStateMachine):
    db: Database

    def __init__(self) -> None:
        super().__init__()
        with self.db.transaction() as s:
            self.account = make_user(s)
            self.member = make_user(s, owner=self.account)
        self.hooks, self.mailer = RecordingHooks(), LogMailer()
        self.purchased = self.granted = self.refunded = Decimal(0)
        self.purchases: dict[uuid.UUID, Decimal] = {}  # id -> what is left
        self.units: dict[date, Decimal] = {}
        self.billed_units: dict[date, Decimal] = {}
        self.balance = Decimal(0)
        self.has_entries = False
        self.level: Decimal | None = None
        self.notices = 0
        self.suspended = False

    # the model of the standing, applied after each operation with its final balance
    def _moved(self, balance: Decimal) -> None:
        self.balance, self.has_entries = balance, True
        level = notice_level(balance, DEFAULT_THRESHOLDS)
        if level is not None and (self.level is None or level < self.level):
            self.notices += 1
        self.level = level
        self.suspended = balance <= 0

    def _post(self, entry_type: EntryType, amount: Decimal, **kw: object) -> None:
        with self.db.transaction() as s:
            r = credits.post(s, Posting(self.account, entry_type, amount, uuid.uuid4().hex,
                                        **kw), hooks=self.hooks)  # type: ignore[arg-type]
        self._moved(r.entry.balance)
        if entry_type is EntryType.PURCHASE:
            self.purchases[r.entry.id] = amount

    @rule(amount=cents)
    def purchase(self, amount: Decimal) -> None:
        self._post(EntryType.PURCHASE, amount, stripe_payment_intent_id=f"pi_{uuid.uuid4().hex}")
        self.purchased += amount

    @rule(amount=cents)
    def grant(self, amount: Decimal) -> None:
        self._post(EntryType.GRANT, amount)
        self.granted += amount

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        if not self.purchases:
            return
        # insertion order, not sorted ids: ids are random, so a sorted choice would differ
        # between hypothesis's replays of the same steps
        pid = data.draw(st.sampled_from(list(self.purchases)))
        allowed = min(self.purchases[pid], self.balance)
        if allowed <= 0:
            with self.db.transaction() as s:
                try:
                    credits.refund(s, self.account, pid, "0.01", reason="too much",
                                   origin=AdminRefund(uuid.uuid4().hex))
                    raise AssertionError("a refund beyond the balance was accepted")
                except Conflict:
                    pass
            return
        amount = Decimal(data.draw(st.integers(1, int(allowed * 100)))) / 100
        with self.db.transaction() as s:
            r = credits.refund(s, self.account, pid, amount, reason="asked",
                               origin=AdminRefund(uuid.uuid4().hex), hooks=self.hooks)
        self._moved(r.entry.balance)
        self.purchases[pid] -= amount
        self.refunded += amount

    @rule(day=st.integers(0, 3), more=st.integers(0, 150_000), member_part=st.integers(0, 100))
    def usage(self, day: int, more: int, member_part: int) -> None:
        d = DAY0 + timedelta(days=day)
        total = self.units.get(d, Decimal(0)) + Decimal(more)
        mine = (total * member_part / 100).quantize(Decimal("1"))
        with self.db.transaction() as s:
            upsert_usage(s, self.account, d, total,
                         {self.account: str(total - mine), self.member: str(mine)})
        self.units[d] = total

    @rule()
    def bill(self) -> None:
        report = run_billing(self.db, DAY0 + timedelta(days=3), hooks=self.hooks, workers=1)
        assert report.ok, report.failures
        due = sum(cost_of(u, PRICE) - cost_of(self.billed_units.get(d, Decimal(0)), PRICE)
                  for d, u in self.units.items())
        assert report.amount >= due  # other accounts of earlier examples are billed too
        if due:
            with self.db.transaction() as s:
                self._moved(credits.balance(s, self.account))
        self.billed_units = dict(self.units)

    @invariant()
    def books_balance(self) -> None:
        with self.db.transaction() as s:
            assert credits.verify(s, self.account).ok
            charged = -Decimal(s.execute(text(
                "SELECT COALESCE(sum(amount), 0) FROM credits_ledger "
                "WHERE account_owner_id = :a AND type = 'usage'"), {"a": self.account}
            ).scalar_one())
            # the sum of the debits is the sum of the rounded daily costs billed so far
            assert charged == sum((cost_of(u, PRICE) for u in self.billed_units.values()),
                                  Decimal(0))
            balance = credits.balance(s, self.account)
            assert balance == self.purchased + self.granted - self.refunded - charged
            assert balance == self.balance
            standing = credits.standing(s, self.account)
            assert standing.suspended == (self.has_entries and self.suspended)
            notices = s.execute(text(
                "SELECT count(*) FROM hopsplane.jobs WHERE task = 'notices.send' "
                "AND args ->> 'account' = :a AND args ->> 'kind' = 'low_balance'"),
                {"a": self.account}
            ).scalar_one()
            assert notices == self.notices
        calls = [kind.removeprefix("account_") for kind, *who in self.hooks.events
                 if who == [self.account]]
        assert calls == ["suspended", "resumed"] * (len(calls) // 2) + (
            ["suspended"] if len(calls) % 2 else [])
        assert (len(calls) % 2 == 1) == standing.suspended


@pytest.mark.slow  # a long property proof (state machine)
def test_billing_state_machine(fresh_db: Database) -> None:
    Billing.db = fresh_db
    run_state_machine_as_test(
        Billing,
        settings=settings(max_examples=25, stateful_step_count=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
