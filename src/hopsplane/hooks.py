"""The seam between the account lifecycle and the clusters it runs on.

Identity and teams (sign-up, invites), and credits (suspension) announce what happened to
an account through :class:`AccountHooks`; the clusters domain implements it by assigning a
cluster and queueing Hopsworks provisioning jobs. Hooks run inside the caller's
transaction and must only record or enqueue work (never call a remote service), so that a
rollback takes them back too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

import structlog
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)


class AccountHooks(Protocol):
    def account_created(self, session: Session, owner_id: str) -> None:
        """A new account owner exists (first sign-in, or a member removed from a team)."""

    def member_joined(self, session: Session, member_id: str, owner_id: str) -> None:
        """A user accepted an invite and is now a member of ``owner_id``'s account."""

    def member_removed(self, session: Session, member_id: str, owner_id: str) -> None:
        """A member left (or was removed from) ``owner_id``'s account."""

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        """The owner assigned a Hopsworks project to a member."""

    def account_closing(self, session: Session, owner_id: str) -> None:
        """An owner with nothing of value (no members, credit or usage) is about to join
        another account: release what was set up for their own (its cluster assignment)."""

    def account_suspended(self, session: Session, owner_id: str) -> None:
        """The balance fell to or below zero: the account's Hopsworks users must stop."""

    def account_resumed(self, session: Session, owner_id: str) -> None:
        """Credit brought the balance above zero again: reactivate the Hopsworks users."""

    def member_budget_exceeded(self, session: Session, member_id: str, owner_id: str) -> None:
        """A member with an enforced budget spent it this month: deactivate their Hopsworks
        user (the account's other users go on)."""

    def member_budget_restored(self, session: Session, member_id: str, owner_id: str) -> None:
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


@runtime_checkable
class BalanceWatch(Protocol):
    """Hooks that also want to hear of usage taking balances down (auto top-up). Called by
    the ledger inside the posting's transaction, after the entries are appended and with
    the accounts' ledger locks held: like every hook it may only record or enqueue work."""

    def balance_dropped(self, session: Session, drops: Sequence[BalanceDrop]) -> None: ...


class LoggingHooks:
    """Default when no cluster integration is wired: record the event in the log."""

    def account_created(self, session: Session, owner_id: str) -> None:
        log.info("account created", account=owner_id)

    def member_joined(self, session: Session, member_id: str, owner_id: str) -> None:
        log.info("member joined", account=owner_id, member=member_id)

    def member_removed(self, session: Session, member_id: str, owner_id: str) -> None:
        log.info("member removed", account=owner_id, member=member_id)

    def project_assigned(self, session: Session, member_id: str, project_id: int) -> None:
        log.info("project assigned", member=member_id, project=project_id)

    def account_closing(self, session: Session, owner_id: str) -> None:
        log.info("account closing", account=owner_id)

    def account_suspended(self, session: Session, owner_id: str) -> None:
        log.info("account suspended", account=owner_id)

    def account_resumed(self, session: Session, owner_id: str) -> None:
        log.info("account resumed", account=owner_id)

    def member_budget_exceeded(self, session: Session, member_id: str, owner_id: str) -> None:
        log.info("member stopped by their budget", account=owner_id, member=member_id)

    def member_budget_restored(self, session: Session, member_id: str, owner_id: str) -> None:
        log.info("member budget no longer stops them", account=owner_id, member=member_id)
