"""A webhook body that is not UTF-8 text is refused as input (4xx) and changes nothing."""

import hashlib
import hmac
import time

from fastapi.testclient import TestClient

from hopsplane.db.engine import Database
from tests.payments.fakes import WEBHOOK_SECRET
from tests.payments.helpers import count


def test_a_body_that_is_not_utf8_is_a_4xx_and_changes_nothing(
    app_client: TestClient, fresh_db: Database
) -> None:
    for body in (b"\xff\xfe", b'{"id": "evt_\xff"}', b"\xc3"):
        stamp = int(time.time())
        # a signature computed over the very bytes sent: only the encoding is wrong
        mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body,
                       hashlib.sha256).hexdigest()
        r = app_client.post("/v1/stripe/webhook", content=body, headers={
            "Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"] == "Invalid"
    assert count(fresh_db, "SELECT count(*) FROM hopsplane.stripe_events") == 0
    assert count(fresh_db, "SELECT count(*) FROM credits_ledger") == 0
