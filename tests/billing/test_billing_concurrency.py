"""Processes racing: billing runs, late usage, purchases and grants on the same accounts.

Afterwards every chain verifies, every day is charged exactly its rounded cost (nothing
twice), balances add up, and each suspension/resumption was announced exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from hopsplane.billing.run import run_billing
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.hooks import Listeners
from tests.factories import make_user, upsert_usage

DAY0 = date(2026, 11, 1)
DAYS = 4
ACCOUNTS = 4
ROUNDS = 12


class CountingHooks:
    """Records every announcement in a table of the test database (in the caller's
    transaction, as real hooks do), so that calls from all processes can be counted."""

    def __init__(self) -> None:
        self.listeners = Listeners()

    def account_suspended(self, session, owner_id):  # type: ignore[no-untyped-def]
        session.execute(text("INSERT INTO hook_calls VALUES (:a, 'suspended', "
                             "clock_timestamp())"), {"a": owner_id})

    def account_resumed(self, session, owner_id):  # type: ignore[no-untyped-def]
        session.execute(text("INSERT INTO hook_calls VALUES (:a, 'resumed', "
                             "clock_timestamp())"), {"a": owner_id})

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return lambda *a, **k: None


def _db(url: str) -> Database:
    return Database(url, Settings(environment="development", db_pool_size=3))


def _biller(url: str, barrier: mp.synchronize.Barrier, seed: int) -> None:
    db = _db(url)
    barrier.wait()
    for _ in range(ROUNDS):
        report = run_billing(db, DAY0 + timedelta(days=DAYS), hooks=CountingHooks(),
                             batch_size=2, workers=2)
        assert report.ok, report.failures
    db.dispose()


def _meter(url: str, barrier: mp.synchronize.Barrier, accounts: list[str], seed: int) -> None:
    db, rng = _db(url), random.Random(seed)
    barrier.wait()
    for _ in range(ROUNDS * 3):
        account, day = rng.choice(accounts), DAY0 + timedelta(days=rng.randrange(DAYS))
        with db.transaction() as s:  # late usage: the day's units only grow
            current = s.execute(text(
                "SELECT compute_units FROM usage_tracking WHERE account_owner_id = :a "
                "AND date = :d FOR UPDATE"), {"a": account, "d": day}).scalar_one_or_none()
            upsert_usage(s, account, day, (current or Decimal(0)) + rng.randrange(1, 90_000))
    db.dispose()


def _payer(url: str, barrier: mp.synchronize.Barrier, accounts: list[str], seed: int) -> None:
    db, rng = _db(url), random.Random(seed)
    barrier.wait()
    for i in range(ROUNDS * 3):
        kind = EntryType.PURCHASE if i % 2 else EntryType.GRANT
        with db.transaction() as s:
            credits.post(s, Posting(rng.choice(accounts), kind,
                                    Decimal(rng.randrange(1, 800)) / 100,
                                    f"pay:{seed}:{i}:{uuid.uuid4().hex}"),
                         hooks=CountingHooks())
    db.dispose()


@pytest.mark.slow  # processes racing
def test_billing_purchases_and_late_usage_racing_in_processes(fresh_db: Database) -> None:
    url = fresh_db.url
    with fresh_db.transaction() as s:
        s.execute(text("CREATE TABLE hook_calls (account text, kind text, at timestamptz)"))
        accounts = [make_user(s) for _ in range(ACCOUNTS)]
        for a in accounts:
            credits.post(s, Posting(a, EntryType.GRANT, Decimal("5.00"), f"start:{a}"))
            for d in range(DAYS):
                upsert_usage(s, a, DAY0 + timedelta(days=d), "10000")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_biller, args=(url, barrier, i)) for i in range(3)]
    procs += [ctx.Process(target=_meter, args=(url, barrier, accounts, 10))]
    procs += [ctx.Process(target=_payer, args=(url, barrier, accounts, 20 + i))
              for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"
    run_billing(fresh_db, DAY0 + timedelta(days=DAYS), hooks=CountingHooks())  # type: ignore[arg-type]

    with fresh_db.transaction() as s:
        assert credits.verify(s).ok
        # every day charged exactly its rounded cost: nothing twice, nothing missed
        rows = s.execute(text(
            """
            SELECT u.account_owner_id, u.date, u.total_cost, u.billed_amount,
                   COALESCE((SELECT -sum(l.amount) FROM credits_ledger l
                             WHERE l.idempotency_key LIKE 'usage:' || u.account_owner_id
                                   || ':' || u.date || ':%'), 0) AS charged
            FROM usage_tracking u
            """)).all()
        assert len(rows) == ACCOUNTS * DAYS
        for r in rows:
            assert r.total_cost == r.billed_amount == r.charged, r
        for a in accounts:
            sums = dict(s.execute(text(
                "SELECT type, sum(amount) FROM credits_ledger WHERE account_owner_id = :a "
                "GROUP BY type"), {"a": a}).all())
            assert credits.balance(s, a) == sum(sums.values())
            # the announcements alternate, and match the standing: exactly once each
            calls = [k for (k,) in s.execute(text(
                "SELECT kind FROM hook_calls WHERE account = :a ORDER BY at"), {"a": a})]
            events = [k for (k,) in s.execute(text(
                "SELECT args ->> 'kind' FROM hopsplane.jobs WHERE task = 'notices.send' "
                "AND args ->> 'account' = :a AND args ->> 'kind' IN ('suspended', 'resumed') "
                "ORDER BY CAST(args -> 'payload' ->> 'ledger_seq' AS bigint)"), {"a": a})]
            assert calls == events
            assert calls == ["suspended", "resumed"] * (len(calls) // 2) + (
                ["suspended"] if len(calls) % 2 else [])
            assert credits.standing(s, a).suspended == (len(calls) % 2 == 1)
        total_suspensions = s.execute(text(
            "SELECT count(*) FROM hook_calls WHERE kind = 'suspended'")).scalar_one()
    assert total_suspensions > 0  # the race did exercise suspension
