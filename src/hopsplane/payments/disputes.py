"""Stripe disputes (chargebacks) of top-ups in the ledger.

Every dispute event, whatever its type, order or number of deliveries, goes through
:func:`sync_dispute`: under the payment's lock it reads the dispute from Stripe as it is
now and posts what the ledger lacks:

- a ``dispute`` entry (negative, the disputed amount; it may take the balance below zero,
  and at or below zero the account is suspended by the posting's standing update) once
  Stripe withdrew the funds (statuses ``needs_response``, ``under_review``, ``won``,
  ``lost``), keyed ``stripe:dispute:<dp id>``;
- a ``dispute_reversal`` (positive, the same amount, referring to the dispute entry) once
  the dispute is ``won``, keyed ``stripe:dispute-won:<dp id>``.

So ``charge.dispute.closed`` (won) delivered before ``charge.dispute.created`` posts both,
and the late ``created`` finds both keys posted. The database holds one entry of each type
per Stripe dispute (``credits_ledger_one_entry_per_dispute``) and a reversal's amount equal
to its dispute's (the ledger's trigger, revision 0017). The owner is told of each entry
(``dispute_opened``, ``dispute_won``: account events published with the posting).
"""

from __future__ import annotations

from decimal import Decimal

import structlog
from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.origins import StripeDispute, StripeDisputeWon
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import BalancePolicy, LedgerEntryOut, Posting
from hopsplane.errors import Invalid
from hopsplane.integrations.stripe.types import DisputeState, StripeGateway
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.payments import repository as repo
from hopsplane.payments import rules
from hopsplane.payments.service import NO_POLICY, purchase_of

log = structlog.get_logger(__name__)


def sync_dispute(
    session: Session,
    gateway: StripeGateway,
    dispute_id: str,
    policy: BalancePolicy = NO_POLICY,
) -> str | None:
    """Bring the ledger's entries of a dispute up to what Stripe says now. Returns the
    account, or None when the disputed payment is not a hopsplane top-up."""
    first = gateway.retrieve_dispute(dispute_id)
    pi = first.payment_intent_id or gateway.retrieve_charge(first.charge_id).payment_intent_id
    if not pi:
        return None
    repo.lock_payment(session, pi)
    dispute = gateway.retrieve_dispute(dispute_id)  # read after the lock: never older
    if dispute.currency.lower() != gateway.config.currency.lower():
        raise Invalid(f"dispute {dispute.id} is in {dispute.currency.upper()}, not "
                      f"{gateway.config.currency.upper()}")
    withdrawn, reinstated = rules.dispute_entries_due(dispute.status)
    if not withdrawn:
        purchase = credits.purchase_for_payment_intent(session, pi)
        return purchase.account_owner_id if purchase else None
    purchase = purchase_of(session, gateway, pi, policy)
    if purchase is None:
        return None
    entry = _post_dispute(session, dispute, purchase, pi, policy)
    if reinstated:
        _post_reversal(session, dispute, entry, policy)
    return purchase.account_owner_id


def _post_dispute(session: Session, dispute: DisputeState, purchase: LedgerEntryOut, pi: str,
                  policy: BalancePolicy) -> LedgerEntryOut:
    amount = rules.from_minor(dispute.amount, dispute.currency)
    if amount <= 0:
        raise Invalid(f"dispute {dispute.id} has no amount")
    result = credits.post(
        session,
        Posting(
            account_owner_id=purchase.account_owner_id,
            entry_type=EntryType.DISPUTE,
            amount=-amount,
            idempotency_key=credits.ledger_key(StripeDispute(dispute.id)),
            description=f"Stripe dispute {dispute.id} of {pi}",
            stripe_payment_intent_id=pi,
            stripe_dispute_id=dispute.id,
        ),
        hooks=policy.hooks,
        thresholds=policy.thresholds,
    )
    if result.created:
        log.info("dispute posted", account=purchase.account_owner_id, dispute=dispute.id,
                 amount=str(amount))
        _publish(session, "dispute_opened", result.entry, dispute.id, amount, pi)
    return result.entry


def _post_reversal(session: Session, dispute: DisputeState, entry: LedgerEntryOut,
                   policy: BalancePolicy) -> None:
    result = credits.post(
        session,
        Posting(
            account_owner_id=entry.account_owner_id,
            entry_type=EntryType.DISPUTE_REVERSAL,
            amount=-entry.amount,
            idempotency_key=credits.ledger_key(StripeDisputeWon(dispute.id)),
            description=f"Stripe dispute {dispute.id} won: funds reinstated",
            stripe_payment_intent_id=entry.stripe_payment_intent_id,
            stripe_dispute_id=dispute.id,
            refers_to=entry.id,
        ),
        hooks=policy.hooks,
        thresholds=policy.thresholds,
    )
    if result.created:
        _publish(session, "dispute_won", result.entry, dispute.id, -entry.amount,
                 entry.stripe_payment_intent_id)


def _publish(session: Session, kind: str, entry: LedgerEntryOut, dispute_id: str,
             amount: Decimal, pi: str | None) -> None:
    """The owner hears of a dispute once per ledger entry it caused (the key names the
    dispute; the entry is posted once per dispute)."""
    notices.publish(session, AccountEvent(
        kind, entry.account_owner_id, f"{kind}:{dispute_id}",
        {"dispute_id": dispute_id, "amount": amount, "payment_intent": pi,
         "ledger_seq": entry.seq},
    ))


def ledger_state(session: Session, dispute_id: str) -> tuple[bool, bool]:
    """(the ledger has the dispute entry, it has the reversal) of a Stripe dispute."""
    return (
        credits.entry_by_key(session, credits.ledger_key(StripeDispute(dispute_id))) is not None,
        credits.entry_by_key(session, credits.ledger_key(StripeDisputeWon(dispute_id)))
        is not None,
    )
