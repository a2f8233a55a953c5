"""The shape of an account event, as every cause publishes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Every kind of event a cause may publish, and what it carries in ``payload`` (money as
# strings, so that no amount passes through a float in JSON):
KINDS = frozenset({
    "low_balance",       # threshold, balance, ledger_seq: the balance fell to a threshold
    "recovered",         # threshold, balance, ledger_seq: back above every threshold
    "suspended",         # balance, ledger_seq: at or below zero
    "resumed",           # balance, ledger_seq: above zero again
    "credits_expiring",  # amount, expires_at, balance, ledger_seq (the grant's)
    "budget_reached",    # member_id, month, percent, budget, spend, enforce, recipients
    "auto_topup",        # event (succeeded|failed|paused|action_required), attempt_id,
                         # amount, detail
    "dispute_opened",    # dispute_id, amount, payment_intent
    "dispute_won",       # dispute_id, amount, payment_intent
    "webhook_disabled",  # endpoint_id, url, error: it kept failing and was turned off
    "topup_succeeded",   # amount, payment_intent, ledger_seq: a Stripe top-up credited
    "member_joined",     # member_id: accepted an invite
    "member_left",       # member_id: removed from the team (owns an empty account now)
})


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """Something that happened to an account, published in the transaction that caused
    it. ``key`` names the event itself (not the attempt to publish it): two transactions
    that cause the same event publish the same key, and it is queued once."""

    kind: str
    account_id: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)

    def args(self) -> dict[str, Any]:
        """The job arguments of its notice (what ``hopsplane.publish_event`` stores)."""
        return {"kind": self.kind, "account": self.account_id, "key": self.key,
                "payload": self.payload}

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> AccountEvent:
        return cls(str(args["kind"]), str(args["account"]), str(args["key"]),
                   dict(args.get("payload") or {}))


@dataclass(frozen=True, slots=True)
class Person:
    """Who a notice goes to: a user's email and name (from the accounts' published view)."""

    user_id: str
    email: str
    name: str | None
