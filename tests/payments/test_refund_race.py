"""Two refund events of one payment racing while Stripe's state moves between them."""

import threading
import time
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import ChargeState, StripeApi, parse_event
from hopsplane.payments import webhooks
from hopsplane.payments.schemas import EventOutcome
from tests.payments.fakes import StripeFront, sign, stripe_event
from tests.payments.helpers import ledger, paid_through_checkout


class PausingGateway:
    """The real gateway, except that the first charge read waits until told to go on."""

    def __init__(self, inner: StripeApi) -> None:
        self.inner = inner
        self.config = inner.config
        self.mode = inner.mode
        self.has_read = threading.Event()
        self.go_on = threading.Event()

    def retrieve_charge(self, charge_id: str) -> ChargeState:
        state = self.inner.retrieve_charge(charge_id)
        if not self.has_read.is_set():
            self.has_read.set()
            assert self.go_on.wait(60)
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _someone_waits_on_an_advisory_lock(db: Database) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.transaction() as s:
            waiting = s.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")).scalar_one()
        if waiting:
            return True
        time.sleep(0.05)
    return False


def test_a_refund_read_before_a_newer_one_still_refunds_the_total_once(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    owner, pi, _ = paid_through_checkout(app_client, fresh_db, stripe_front, owner=None,
                                          amount="60.00")
    first = stripe_event("charge.refunded", stripe_front.refund(pi, 3000))
    pausing = PausingGateway(gateway)
    outcomes: dict[str, EventOutcome] = {}

    def handle(name: str, gw: Any, event: dict[str, Any]) -> None:
        with fresh_db.transaction() as s:
            outcomes[name] = webhooks.handle_event(s, gw, parse_event(sign(event)[0]))

    a = threading.Thread(target=handle, args=("a", pausing, first))
    a.start()
    assert pausing.has_read.wait(60)  # A read "30.00 refunded" and holds the payment's lock
    second = stripe_event("charge.refunded", stripe_front.refund(pi, 2000))  # now 50.00
    b = threading.Thread(target=handle, args=("b", gateway, second))
    b.start()
    # B must queue behind A before reading Stripe, so it cannot act on the older state
    assert _someone_waits_on_an_advisory_lock(fresh_db)
    pausing.go_on.set()
    a.join()
    b.join()
    assert outcomes["a"].status == "processed" and outcomes["b"].status == "processed"
    assert ledger(fresh_db, owner) == [
        ("purchase", Decimal("60.00"), Decimal("60.00")),
        ("refund", Decimal("-30.00"), Decimal("30.00")),
        ("refund", Decimal("-20.00"), Decimal("10.00")),
    ]
