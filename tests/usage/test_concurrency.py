"""Writers racing on the same accounts and days, with overlapping duplicates: the totals
must come out exact (real threads, real PostgreSQL, committed transactions)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.usage import combiner as combiner_module
from hopsplane.usage import repository as repo
from hopsplane.usage import service
from hopsplane.usage.combiner import BatchCombiner
from hopsplane.usage.schemas import NewEvent, UsageEventIn
from hopsplane.usage.service import Submitter
from tests.factories import make_user


def test_concurrent_batches_with_shared_duplicates_fold_exactly(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owners = [make_user(s) for _ in range(3)]
        members = [make_user(s, owner=o) for o in owners]
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


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


@contextmanager
def _fold_lock_held(db: Database) -> Iterator[Callable[[], bool]]:
    """Hold the fold lock from another session; yields 'is someone waiting for it'."""
    with db.engine.connect() as holder, db.engine.connect() as watcher:
        holder.execute(text("SELECT pg_advisory_lock(hashtextextended('usage-fold', 0))"))
        holder.commit()

        def waiting() -> bool:
            n = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")).scalar_one()
            watcher.rollback()
            return bool(n)

        try:
            yield waiting
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(hashtextextended('usage-fold', 0))"))
            holder.commit()


def _grouped_batches(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch, batches: list[list[NewEvent]]
) -> tuple[list[tuple[int, int, int] | BaseException], list[int]]:
    """Submit the batches to one combiner while the fold lock is held, so that all but the
    first queue behind it and are taken together; (result or error per batch, group sizes)."""
    sizes: list[int] = []
    real = repo.ingest_batches

    def recording(session: Session, group: Sequence[Sequence[NewEvent]]) -> list[tuple[int, int, int]]:
        sizes.append(len(group))
        return real(session, group)

    monkeypatch.setattr(combiner_module.repo, "ingest_batches", recording)
    combiner = BatchCombiner(lambda: fresh_db)
    results: list[tuple[int, int, int] | BaseException] = [RuntimeError("not run")] * len(batches)

    def run(i: int) -> None:
        try:
            results[i] = combiner.ingest(batches[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    with _fold_lock_held(fresh_db) as someone_waits:
        threads[0].start()
        _wait_for(someone_waits, "the first batch to wait for the fold lock")
        for t in threads[1:]:
            t.start()
        _wait_for(lambda: len(combiner._queue) == len(batches) - 1, "the others to queue")
    for t in threads:
        t.join()
    return results, sizes


def test_batches_arriving_together_are_folded_together_and_exactly(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_db.transaction() as s:
        owners = [make_user(s) for _ in range(3)]
        members = [make_user(s, owner=o) for o in owners]
    people = owners + members
    at = datetime(2026, 11, 20, 8, tzinfo=UTC)

    def batch(worker: int) -> list[NewEvent]:
        # ids shared by every batch (only the first batch queued may count them), ids of
        # this batch alone, and ids repeated inside the batch
        ids = [f"s-{i}" for i in range(20)] + [f"w{worker}-{i}" for i in range(20)]
        ids += ids[:5]
        return service.validated_batch([UsageEventIn(
            id=key, account_id=people[(worker + n) % len(people)], compute_units=f"{n % 7}.{worker}",
            timestamp=at + timedelta(days=n % 2)) for n, key in enumerate(ids)],
            Submitter(admin_id="a"))

    batches = [batch(w) for w in range(6)]
    results, sizes = _grouped_batches(fresh_db, monkeypatch, batches)
    assert all(isinstance(r, tuple) for r in results), results
    assert max(sizes) > 1  # the queued batches were taken together
    accepted = [r[0] for r in results if isinstance(r, tuple)]
    # the shared ids count once, in the first batch that has them
    assert accepted[0] == 40 and accepted[1:] == [20] * 5

    expected: dict[tuple[str, str], Decimal] = {}
    seen: set[str] = set()
    for rows in batches:
        for row in rows:
            if row.event_id not in seen:
                seen.add(row.event_id)
                owner = owners[people.index(row.account_id or "") % 3]
                key = (owner, row.occurred_at.date().isoformat())
                expected[key] = expected.get(key, Decimal(0)) + row.compute_units
    with fresh_db.transaction() as s:
        got = {(a, d.isoformat()): u for a, d, u in s.execute(text(
            "SELECT account_owner_id, date, compute_units FROM usage_tracking")).all()}
        events = s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one()
        bad = s.execute(text(
            "SELECT count(*) FROM usage_tracking WHERE "
            "hopsplane.breakdown_total(user_breakdown) <> compute_units")).scalar_one()
    assert events == len(seen) == sum(accepted)
    assert got == expected
    assert bad == 0


def test_a_batch_that_fails_in_a_group_fails_alone(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    good = [service.validated_batch([UsageEventIn(
        id=f"g{w}-{i}", account_id=owner, compute_units="1",
        timestamp=datetime(2026, 11, 20, tzinfo=UTC)) for i in range(3)], Submitter(admin_id="a"))
        for w in range(3)]
    # past validation, but refused by the database (usage_events_id_length)
    bad = [dataclasses.replace(good[0][0], event_id="x" * 300)]
    results, sizes = _grouped_batches(fresh_db, monkeypatch, [good[0], good[1], bad, good[2]])
    assert max(sizes) > 1
    assert [r if isinstance(r, tuple) else "error" for r in results] == [
        (3, 0, 1), (3, 0, 1), "error", (3, 0, 1)]
    assert "usage_events_id_length" in str(results[2])
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT compute_units FROM usage_tracking")).scalar_one() == 9
        assert s.execute(text("SELECT count(*) FROM hopsplane.usage_events")).scalar_one() == 9
