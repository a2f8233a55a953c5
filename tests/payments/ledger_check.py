"""The ledger against Stripe, for the check every payments test ends with: every charge,
refund and dispute Stripe has for this test's accounts is in the ledger, and every purchase
of the ledger is a payment Stripe has (the reconciliation of ``hopsplane stripe reconcile``,
read-only, limited to what this test made)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import StripeApi
from hopsplane.payments.reconcile import reconcile
from hopsplane.payments.schemas import Discrepancy

LEDGER_SIDE = frozenset({"unknown_to_stripe", "not_succeeded_in_stripe"})
"""Kinds found from the ledger's side: always this test's database."""


def stripe_vs_ledger(db: Database, gateway: StripeApi, since: datetime) -> list[Discrepancy]:
    """What Stripe and this database's ledger disagree on, for Stripe objects created and
    purchases posted since ``since``. Charges of other tests (the local Stripe is shared by
    a worker's tests) name accounts this database does not have, and are left out."""
    with db.transaction() as session:
        report = reconcile(session, gateway, since=since, fix=False)
        accounts = set(session.execute(text("SELECT id FROM users")).scalars())
        session.rollback()  # read-only: nothing of the comparison is kept
    return [d for d in report.discrepancies
            if d.kind in LEDGER_SIDE or d.account_owner_id in accounts]
