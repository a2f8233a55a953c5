"""Auto top-up's consent and settings in the audit log: who agreed to what, who turned it
off, before and after."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hopsplane.audit import service as audit
from hopsplane.db.engine import Database
from tests.apps import act_as
from tests.factories import committed_user, post
from tests.payments.helpers import checkout_event, deliver, paid_session


def test_consent_settings_and_turning_off_are_recorded(
    app_client: TestClient, fresh_db: Database
) -> None:
    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    for threshold in ("20.00", "25.00"):
        r = app_client.put("/v1/account/auto-topup", json={
            "threshold": threshold, "amount": "50.00", "accept_terms": True})
        assert r.status_code == 200, r.text
    assert app_client.delete("/v1/account/auto-topup").status_code == 200
    with fresh_db.transaction() as s:
        found = list(reversed(audit.entries(s, account_id=owner, action="auto_topup.")))
    assert [e.action for e in found] == [
        "auto_topup.configured", "auto_topup.configured", "auto_topup.turned_off"]
    assert all((e.actor_kind, e.actor_id) == ("person", owner) for e in found)
    first, second, off = found
    assert first.before is None and first.after is not None
    assert first.after["threshold"] == "20.00" and first.after["status"] == "awaiting_card"
    assert second.before is not None and second.before["threshold"] == "20.00"
    assert second.after is not None and second.after["threshold"] == "25.00"
    assert off.after is not None and off.after["status"] == "off"


@pytest.mark.stripe_unreconciled("events about payment intents Stripe never had (no Stripe call needed)")
def test_a_resumption_by_a_stripe_webhook_is_recorded_as_the_webhooks(
    app_client: TestClient, fresh_db: Database
) -> None:
    """No person is behind a webhook: the decision is the system's, named by the route,
    from Stripe's address, in the webhook's transaction."""
    owner = committed_user(fresh_db)
    with fresh_db.transaction() as s:
        post(s, owner, "usage", "-5.00")  # at or below zero: suspended
    r = deliver(app_client, checkout_event("checkout.session.completed",
                                           paid_session(owner, "pi_audit", 1000)))
    assert r.json()["status"] == "processed"
    with fresh_db.transaction() as s:
        [resumed] = audit.entries(s, account_id=owner, action="credits.resumed")
    assert (resumed.actor_kind, resumed.actor_id) == ("system", "POST /v1/stripe/webhook")
    assert resumed.source == "testclient" and resumed.request_id
    assert resumed.after == {"suspended": False, "balance": "5.00"}
