"""A retried refund (the same idempotency key) gets the original entry, never a 409, also
when the retry races the original (the client timed out and sent it again)."""

from __future__ import annotations

import threading
from decimal import Decimal

from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminRefund
from hopsplane.credits.schemas import PostResult
from hopsplane.db.engine import Database
from tests.factories import committed_user, post


def test_racing_retries_of_one_refund_get_the_original_entry(fresh_db: Database) -> None:
    owner = committed_user(fresh_db)
    with fresh_db.transaction() as s:
        purchase = post(s, owner, "purchase", "50.00").entry
        post(s, owner, "usage", "-30.00")
    results: list[PostResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def retry() -> None:
        try:
            barrier.wait()
            with fresh_db.transaction() as s:
                results.append(credits.refund(
                    s, owner, purchase.id, "20.00", reason="duplicate charge",
                    origin=AdminRefund("ticket-77"), refunded_by="admin"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.created for r in results) == [False] * 5 + [True]
    assert len({r.entry.id for r in results}) == 1
    with fresh_db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("0.00")
        again = credits.refund(s, owner, purchase.id, "20.00", reason="duplicate charge",
                               origin=AdminRefund("ticket-77"))
        assert again.created is False and again.entry.id == results[0].entry.id
