"""The account hooks every edge hands to the services: the clusters domain's (placement,
provisioning, suspension) plus the payments domain's auto top-up watch, which hears of
usage taking balances down (:class:`hopsplane.hooks.BalanceWatch`) in the posting's own
transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from hopsplane.clusters.hooks import build_account_hooks
from hopsplane.config import Settings
from hopsplane.hooks import AccountHooks, BalanceDrop
from hopsplane.integrations.stripe import build_stripe
from hopsplane.integrations.stripe.types import StripeGateway
from hopsplane.payments import service as payments
from hopsplane.payments.autotopup import service as autotopup


class WatchingHooks:
    """:class:`AccountHooks` that also start auto top-ups (a :class:`BalanceWatch`)."""

    def __init__(self, inner: AccountHooks, stripe: StripeGateway | None = None) -> None:
        self.inner = inner
        self.stripe = stripe

    def balance_dropped(self, session: Session, drops: Sequence[BalanceDrop]) -> None:
        autotopup.observe(session, drops)

    def account_created(self, session: Session, owner_id: str) -> None:
        self.inner.account_created(session, owner_id)

    def member_joined(self, session: Session, member_id: str, owner_id: str) -> None:
        self.inner.member_joined(session, member_id, owner_id)

    def member_removed(self, session: Session, member_id: str, owner_id: str) -> None:
        self.inner.member_removed(session, member_id, owner_id)

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        self.inner.project_assigned(session, member_id, project_id)

    def account_closing(self, session: Session, owner_id: str) -> None:
        """An owner joins another account: their open Checkout Sessions are expired first,
        so no payment can arrive for an account that is gone (refused while one is still
        processing). Without Stripe configured there is nothing to expire."""
        if self.stripe is not None:
            payments.close_checkouts(session, self.stripe, owner_id)
        self.inner.account_closing(session, owner_id)

    def account_suspended(self, session: Session, owner_id: str) -> None:
        self.inner.account_suspended(session, owner_id)

    def account_resumed(self, session: Session, owner_id: str) -> None:
        self.inner.account_resumed(session, owner_id)

    def member_budget_exceeded(self, session: Session, member_id: str, owner_id: str) -> None:
        self.inner.member_budget_exceeded(session, member_id, owner_id)

    def member_budget_restored(self, session: Session, member_id: str, owner_id: str) -> None:
        self.inner.member_budget_restored(session, member_id, owner_id)


def build_hooks(settings: Settings) -> AccountHooks:
    return WatchingHooks(build_account_hooks(settings), build_stripe(settings))
