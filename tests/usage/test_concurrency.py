"""Writers racing on the same accounts and days, with overlapping duplicates: the totals
must come out exact (real threads, real PostgreSQL, committed transactions)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text

from hopsplane.db.engine import Database
from hopsplane.usage import service
from hopsplane.usage.schemas import UsageEventIn
from hopsplane.usage.service import Submitter
from tests.usage.conftest import make_account


def test_concurrent_batches_with_shared_duplicates_fold_exactly(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owners = [make_account(s) for _ in range(3)]
        members = [make_account(s, owner=o) for o in owners]
    people = owners + members

    def batch(worker: int, round_: int) -> list[UsageEventIn]:
        events = []
        for i in range(60):
            # half the ids are shared by every worker: only one copy may count
            shared = i % 2 == 0
            key = f"s-{round_}-{i}" if shared else f"w{worker}-{round_}-{i}"
            events.append(UsageEventIn(
                id=key, account_id=people[i % len(people)], compute_units=f"{i % 7}.0{i % 3}",
                timestamp=datetime(2026, 11, 20 + i % 2, 8, tzinfo=UTC)))
        return events[::-1] if worker % 2 else events

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run(worker: int) -> None:
        try:
            barrier.wait()
            for round_ in range(4):
                with fresh_db.transaction() as s:
                    service.ingest(s, batch(worker, round_), Submitter(admin_id="a"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    expected: dict[str, Decimal] = {}
    seen: set[str] = set()
    for worker in range(6):
        for round_ in range(4):
            for e in batch(worker, round_):
                if e.id not in seen:
                    seen.add(e.id)
                    owner = owners[people.index(e.account_id or "") % 3]
                    expected[owner] = expected.get(owner, Decimal(0)) + Decimal(str(e.compute_units))
    with fresh_db.transaction() as s:
        got = dict(s.execute(text(
            "SELECT account_owner_id, sum(compute_units) FROM usage_tracking GROUP BY 1")).all())
        events = s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one()
        bad = s.execute(text(
            "SELECT count(*) FROM usage_tracking WHERE "
            "hopsplane.breakdown_total(user_breakdown) <> compute_units")).scalar_one()
    assert events == len(seen)
    assert got == expected
    assert bad == 0
