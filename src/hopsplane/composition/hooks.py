"""The account hooks every edge (API, CLI, worker) hands to the services: the clusters
domain's (placement, provisioning, suspension), with the listeners of the payments domain
registered on them explicitly, here and nowhere else:

- auto top-up hears of usage taking balances down (:func:`hopsplane.payments.autotopup.
  service.observe`), called by the ledger in the posting's own transaction under the
  account's ledger lock;
- before an owner's account closes (they join another account), their open Stripe Checkout
  Sessions are expired (:func:`hopsplane.payments.service.close_checkouts`), so no payment
  can arrive for an account that is gone; without Stripe configured there is nothing to
  expire.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.config import Settings
from hopsplane.hooks import AccountHooks
from hopsplane.integrations.stripe import build_stripe
from hopsplane.integrations.stripe.types import StripeGateway
from hopsplane.payments import service as payments
from hopsplane.payments.autotopup import service as autotopup


def register_listeners(hooks: AccountHooks, stripe: StripeGateway | None) -> AccountHooks:
    """Register the other domains' listeners on ``hooks`` (returned, for chaining)."""
    hooks.listeners.on_balance_drop(autotopup.observe)
    if stripe is not None:
        gateway = stripe

        def close_checkouts(session: Session, account_id: str) -> None:
            payments.close_checkouts(session, gateway, account_id)

        hooks.listeners.on_account_closing(close_checkouts)
    return hooks


def build_account_hooks(settings: Settings) -> AccountHooks:
    return register_listeners(ClusterHooks(), build_stripe(settings))
