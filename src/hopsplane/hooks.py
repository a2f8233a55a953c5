"""The seam between the account lifecycle and the domains that act on it.

Identity and teams (sign-up, invites), and credits (suspension) announce what happened to
an account through :class:`AccountHooks`; the clusters domain implements it by assigning a
cluster and queueing Hopsworks provisioning jobs. Other domains that must hear of an event
register a listener on the hooks' :class:`Listeners`, explicitly, in the composition root
(``composition/hooks.py``): auto top-up hears the ledger's balance drops, payments expires
an owner's open Checkout Sessions before their account closes. Hooks and listeners run
inside the caller's transaction and must only record or enqueue work (never call a remote
service, with the one exception said at :meth:`Listeners.on_account_closing`), so that a
rollback takes them back too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import structlog
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)


class AccountHooks(Protocol):
    listeners: Listeners
    """What other domains registered to hear (the ledger's balance drops, an account
    closing), called by the domain that announces the event."""

    def account_created(self, session: Session, account_id: str) -> None:
        """A new account owner exists (first sign-in, or a member removed from a team)."""

    def member_joined(self, session: Session, member_id: str, account_id: str) -> None:
        """A user accepted an invite and is now a member of the account ``account_id``."""

    def member_removed(self, session: Session, member_id: str, account_id: str) -> None:
        """A member left (or was removed from) the account ``account_id``."""

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        """The owner assigned a Hopsworks project to a member."""

    def account_closing(self, session: Session, account_id: str) -> None:
        """An owner with nothing of value (no members, credit or usage) is about to join
        another account: release what was set up for their own (its cluster assignment)."""

    def account_suspended(self, session: Session, account_id: str) -> None:
        """The balance fell to or below zero: the account's Hopsworks users must stop."""

    def account_resumed(self, session: Session, account_id: str) -> None:
        """Credit brought the balance above zero again: reactivate the Hopsworks users."""

    def member_budget_exceeded(self, session: Session, member_id: str, account_id: str) -> None:
        """A member with an enforced budget spent it this month: deactivate their Hopsworks
        user (the account's other users go on)."""

    def member_budget_restored(self, session: Session, member_id: str, account_id: str) -> None:
        """A member stopped by their budget may work again (a new month, a raised budget,
        enforcement turned off, the budget removed): reactivate their Hopsworks user."""


@dataclass(frozen=True, slots=True)
class BalanceDrop:
    """What usage postings of one transaction did to one account's balance: from
    ``before`` down to ``after``; ``entry_key`` is the idempotency key of the last entry
    (it names the posting that took the balance down, e.g. to key an auto top-up)."""

    account_owner_id: str
    before: Decimal
    after: Decimal
    entry_key: str


class BalanceListener(Protocol):
    def __call__(self, session: Session, drops: Sequence[BalanceDrop], /) -> object: ...


class ClosingListener(Protocol):
    def __call__(self, session: Session, account_id: str, /) -> object: ...


class Listeners:
    """The listeners of a hooks object, each registered by one explicit call of the
    composition root; the domain that announces an event calls every listener of it, in
    the order registered."""

    def __init__(self) -> None:
        self.balance_drop: list[BalanceListener] = []
        self.account_closing: list[ClosingListener] = []

    def on_balance_drop(self, listener: BalanceListener) -> None:
        """Hear what usage postings did to balances (auto top-up). Called by the ledger in
        the posting's transaction, after the entries are appended and with the accounts'
        ledger locks held; listeners run in the order registered, and like every hook may
        only record or enqueue work."""
        self.balance_drop.append(listener)

    def on_account_closing(self, listener: ClosingListener) -> None:
        """Act before an owner's account closes (they join another account), before the
        hooks' own :meth:`AccountHooks.account_closing`. A listener may refuse the join by
        raising; the payments domain's (expire the owner's open Checkout Sessions) is the
        one listener that calls a remote service, Stripe, since a payment to an account
        that is gone must be prevented before the join commits."""
        self.account_closing.append(listener)

    def announce_balance_drops(self, session: Session, drops: Sequence[BalanceDrop]) -> None:
        for listener in self.balance_drop:
            listener(session, drops)

    def announce_account_closing(self, session: Session, account_id: str) -> None:
        for listener in self.account_closing:
            listener(session, account_id)


class LoggingHooks:
    """Hooks that only record each event in the log (tests and benchmarks that need no
    clusters); listeners may be registered on them like on any hooks."""

    def __init__(self) -> None:
        self.listeners = Listeners()

    def account_created(self, session: Session, account_id: str) -> None:
        log.info("account created", account=account_id)

    def member_joined(self, session: Session, member_id: str, account_id: str) -> None:
        log.info("member joined", account=account_id, member=member_id)

    def member_removed(self, session: Session, member_id: str, account_id: str) -> None:
        log.info("member removed", account=account_id, member=member_id)

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        log.info("project assigned", member=member_id, project=project_id)

    def account_closing(self, session: Session, account_id: str) -> None:
        log.info("account closing", account=account_id)

    def account_suspended(self, session: Session, account_id: str) -> None:
        log.info("account suspended", account=account_id)

    def account_resumed(self, session: Session, account_id: str) -> None:
        log.info("account resumed", account=account_id)

    def member_budget_exceeded(self, session: Session, member_id: str, account_id: str) -> None:
        log.info("member stopped by their budget", account=account_id, member=member_id)

    def member_budget_restored(self, session: Session, member_id: str, account_id: str) -> None:
        log.info("member budget no longer stops them", account=account_id, member=member_id)
