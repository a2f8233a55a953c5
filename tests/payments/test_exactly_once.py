"""1,000 purchases, each delivered three times, shuffled, by concurrent senders: every
purchase is credited exactly once."""

import random
import threading
from collections import Counter
from decimal import Decimal
from queue import Empty, Queue
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from tests.factories import committed_user
from tests.payments.fakes import sign
from tests.payments.helpers import checkout_event, paid_session

PURCHASES = 1000
ACCOUNTS = 40
SENDERS = 4


@pytest.mark.slow
@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_a_thousand_purchases_delivered_three_times_in_any_order_credit_once_each(
    app_client: TestClient, fresh_db: Database
) -> None:
    rng = random.Random(7)
    owners = [committed_user(fresh_db) for _ in range(ACCOUNTS)]
    expected: dict[str, Decimal] = {o: Decimal("0.00") for o in owners}
    deliveries: list[tuple[bytes, str]] = []
    for i in range(PURCHASES):
        owner = owners[i % ACCOUNTS]
        cents = rng.randint(500, 500_000)
        expected[owner] += Decimal(cents) / 100
        cs = paid_session(owner, f"pi_bulk{i:05d}", cents)
        completed = checkout_event("checkout.session.completed", cs)
        if i % 2:
            events = [completed] * 3  # the same event three times
        else:  # the same payment through both purchase events, one of them repeated
            events = [completed, completed,
                      checkout_event("checkout.session.async_payment_succeeded", cs)]
        deliveries += [sign(e) for e in events]
    rng.shuffle(deliveries)

    queue: Queue[tuple[bytes, str]] = Queue()
    for d in deliveries:
        queue.put(d)
    answers: list[dict[str, Any]] = []
    failures: list[Any] = []
    lock = threading.Lock()

    def sender() -> None:
        while True:
            try:
                body, header = queue.get_nowait()
            except Empty:
                return
            r = app_client.post("/v1/stripe/webhook", content=body,
                                headers={"Stripe-Signature": header})
            with lock:
                (answers if r.status_code == 200 else failures).append(
                    r.json() if r.status_code == 200 else (r.status_code, r.text))

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    statuses = Counter(a["status"] for a in answers)
    notes = Counter(a["note"] for a in answers if a["status"] == "processed")
    distinct_events = PURCHASES + PURCHASES // 2
    assert statuses == {"processed": distinct_events, "duplicate": 3 * PURCHASES - distinct_events}
    assert notes == {"credited": PURCHASES, "already credited": PURCHASES // 2}
    with fresh_db.transaction() as s:
        per_account = dict(s.execute(text(
            "SELECT account_owner_id, count(*) FROM credits_ledger GROUP BY 1")).all())
        stored = s.execute(text("SELECT count(*) FROM hopsplane.stripe_events")).scalar_one()
        for owner in owners:
            assert credits.balance(s, owner) == expected[owner], owner
        assert credits.verify(s).ok
    assert sum(per_account.values()) == PURCHASES
    assert set(per_account.values()) == {PURCHASES // ACCOUNTS}
    assert stored == distinct_events
