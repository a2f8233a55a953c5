"""The check every payments test ends with (``conftest.ledger_matches_stripe``) can fail:
each kind of disagreement between Stripe and the ledger is found, and goes away once the
ledger has what Stripe has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import StripeApi
from tests.apps import act_as
from tests.factories import committed_user, post
from tests.payments.fakes import StripeFront, stripe_event
from tests.payments.helpers import checkout_event, deliver
from tests.payments.ledger_check import stripe_vs_ledger


@pytest.mark.stripe_unreconciled("breaks the agreement on purpose, to show the check fails")
def test_the_ledger_check_finds_every_kind_of_disagreement(
    app_client: TestClient, fresh_db: Database, stripe_front: StripeFront, gateway: StripeApi
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)

    def apart() -> set[str]:
        return {d.kind for d in stripe_vs_ledger(fresh_db, gateway, since)}

    owner = committed_user(fresh_db)
    act_as(app_client, owner)
    sid = app_client.post("/v1/account/topups", json={"amount": "40.00"}).json()["session_id"]
    paid = stripe_front.pay(sid)
    pi = str(paid["payment_intent"])
    assert apart() == {"missing_purchase"}  # paid in Stripe, the webhook lost
    deliver(app_client, checkout_event("checkout.session.completed", paid))
    assert apart() == set()

    charge = stripe_front.refund(pi, 500)
    assert apart() == {"missing_refund"}  # refunded in Stripe, not in the ledger
    deliver(app_client, stripe_event("charge.refunded", charge))
    assert apart() == set()

    dispute = stripe_front.dispute(pi, amount=1000)
    assert apart() == {"missing_dispute"}
    deliver(app_client, stripe_event("charge.dispute.created", dispute))
    assert apart() == set()

    with fresh_db.transaction() as s:  # credit that Stripe never received
        post(s, owner, "purchase", "9.00", stripe_payment_intent_id="pi_never_paid")
    assert apart() == {"unknown_to_stripe"}
