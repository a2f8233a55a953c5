"""Auto top-up: buy credit with a saved card when usage takes the balance below a threshold.

The flow, and what makes each anchor failure impossible:

1. **Opt in** (:func:`configure`, :func:`start_card_setup`, :func:`card_saved`): threshold
   and amount with the exact terms agreed to (stored with who and when), then a card saved
   through Stripe Checkout in ``setup`` mode. Turning it off or removing the card revokes
   the consent and cancels what has not been charged yet.
2. **Below the threshold** (:func:`observe`): called by the ledger in the posting's
   transaction (a balance-drop listener registered on the hooks, :class:`hopsplane.hooks.
   Listeners`, by ``composition/hooks.py``), under the account's ledger lock and
   this domain's row lock. A usage posting that leaves the balance below the threshold
   (crossing it, or finding it already below after an expiry, a dispute or a short top-up)
   inserts one attempt keyed by that posting's ledger key (unique), unless an attempt of
   the account is still active (unique partial index), and enqueues its charge job.
   Nothing calls Stripe here, so Stripe being down never blocks a posting.
3. **Decide** (:func:`begin_charge`, a short transaction with the row lock): still on, still
   below the threshold, within today's count and money caps (else deferred to the next UTC
   day) -> the try is counted and the money reserved before Stripe is called.
4. **Charge** (``payments.tasks``): one off-session PaymentIntent per try, Stripe
   idempotency key ``hopsplane:autotopup:<attempt>:<try>``: a retried job replays Stripe's
   answer instead of charging twice.
5. **Record** (:func:`record_outcome`): credit is posted only for a PaymentIntent Stripe says
   succeeded, through :func:`hopsplane.payments.service.fulfil_payment` (the same
   exactly-once key as the webhook's ``payment_intent.succeeded``). A decline counts a
   failure, releases the reserved money and retries after an exponential backoff; after
   ``max_failures`` in a row auto top-up pauses itself and the owner is told (no runaway, no
   silent stop). ``authentication_required`` never retries: the owner gets a link to pay
   on Stripe's hosted Checkout page (:func:`start_authentication`).

Locks are always taken in one order: a payment's lock, the account's ledger lock, its auto
top-up row, its attempt (a posting already holds the ledger lock when it observes), so a
posting and a recording job never deadlock.

Every notice (succeeded, failed, paused, action required) is a job enqueued with an
idempotency key in the transaction that changed the state: once per event, whatever retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.config import Settings
from hopsplane.credits import service as credits
from hopsplane.credits.schemas import BalancePolicy
from hopsplane.errors import Conflict, Invalid, NotFound, Unavailable
from hopsplane.hooks import BalanceDrop
from hopsplane.integrations.stripe.types import (
    ACCOUNT_METADATA_KEY,
    ChargeOutcome,
    CheckoutRequest,
    SetupCheckoutRequest,
    StripeConfig,
    StripeGateway,
)
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.payments import repository as payments_repo
from hopsplane.payments import rules as payment_rules
from hopsplane.payments import service as payments
from hopsplane.payments.autotopup import repository as repo
from hopsplane.payments.autotopup.rules import (
    ACTIVE,
    Limits,
    backoff,
    cap_refusal,
    next_day_start,
    require_terms,
    terms_text,
    utc_day,
    validate_settings,
    wants_topup,
)
from hopsplane.payments.autotopup.schemas import (
    AttemptOut,
    AutoTopupOut,
    ChargePlan,
    CheckoutLinkOut,
    ConsentOut,
)
from hopsplane.payments.schemas import Payment
from hopsplane.worker import service as queue

log = structlog.get_logger(__name__)

ATTEMPT_METADATA_KEY = "hopsplane_auto_topup"
"""Metadata naming the attempt on its PaymentIntents and completion Checkout Sessions."""

CHARGE_TASK = "payments.auto_topup_charge"
FAILED_TASK = "payments.auto_topup_failed"
NOTICE_KINDS = ("succeeded", "failed", "paused", "action_required")


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_per_day=settings.auto_topup_max_per_day,
        max_amount_per_day=settings.auto_topup_max_amount_per_day,
        max_failures=settings.auto_topup_max_failures,
        backoff_seconds=settings.auto_topup_backoff_seconds,
    )


# --- opting in and out ----------------------------------------------------------------


def configure(
    session: Session, config: StripeConfig, limits: Limits, account_id: str, by_user: str,
    threshold: object, amount: object, accept_terms: bool,
) -> AutoTopupOut:
    """Set threshold and amount and record the owner's consent to the terms they were
    shown. On with a saved card, else ``awaiting_card``. Re-consenting resumes a paused
    auto top-up (its failure count starts again)."""
    require_terms(accept_terms)
    below, value = validate_settings(threshold, amount, config.min_topup, config.max_topup)
    credits.require_owner(session, account_id)
    before = _audited(repo.state(session, account_id))
    row = repo.upsert_settings(session, account_id, below, value, config.currency)
    if row["consent_id"] is not None:
        repo.revoke_consent(session, row["consent_id"], by_user)
    consent_id = repo.insert_consent(
        session, account_id, by_user, terms_text(below, value, config.currency, limits), below,
        value,
    )
    status = "on" if row["payment_method_id"] else "awaiting_card"
    repo.update_state(session, account_id, consent_id=consent_id, status=status,
                      paused_reason=None, consecutive_failures=0)
    audit.record(session, "auto_topup.configured", account_id=account_id, target="auto_topup",
                 before=before, after={**(_audited(repo.state(session, account_id)) or {}),
                                       "consent_id": consent_id})
    log.info("auto top-up configured", account=account_id, by=by_user, status=status,
             threshold=str(below), amount=str(value))
    return view(session, account_id, limits, config)


def _audited(row: RowMapping | None) -> dict[str, object] | None:
    """What the audit log keeps of auto top-up's state: the settings and standing, never
    the card's Stripe id (its label names it)."""
    if row is None:
        return None
    return {k: row[k] for k in ("status", "threshold", "amount", "currency", "card_label",
                                "paused_reason")}


def turn_off(
    session: Session, limits: Limits, account_id: str, by_user: str, reason: str = "turned off"
) -> AutoTopupOut:
    """Revoke the consent and stop: nothing scheduled or waiting is charged any more. A
    charge already at Stripe is still recorded when its answer comes (and credited if it
    succeeded: the money was taken)."""
    row = repo.state(session, account_id, lock=True)
    if row is None:
        raise NotFound("auto top-up was never set up for this account")
    if row["consent_id"] is not None:
        repo.revoke_consent(session, row["consent_id"], by_user)
    repo.update_state(session, account_id, status="off", paused_reason=None)
    audit.record(session, "auto_topup.turned_off", account_id=account_id, target="auto_topup",
                 before=_audited(row), after=_audited(repo.state(session, account_id)))
    _cancel_waiting(session, account_id, f"auto top-up {reason} by {by_user}")
    return view(session, account_id, limits)


def _cancel_waiting(session: Session, account_id: str, why: str) -> None:
    for a in repo.active_attempts(session, account_id):
        if a["status"] in ("scheduled", "requires_action"):
            repo.update_attempt(session, a["id"], status="canceled", outcome=why,
                                next_try_at=None)


def start_card_setup(
    session: Session, gateway: StripeGateway, account_id: str, success_url: str,
    cancel_url: str,
) -> CheckoutLinkOut:
    """A Stripe Checkout Session in setup mode where the owner saves the card auto top-up
    charges. Settings (and consent) come first."""
    row = repo.state(session, account_id)
    if row is None or row["status"] == "off":
        raise Conflict("set the threshold and amount and accept the terms first",
                       code="auto_topup_not_configured")
    customer = payments.ensure_customer(session, gateway, account_id)
    checkout = gateway.create_setup_session(SetupCheckoutRequest(
        customer_id=customer, account_owner_id=account_id, currency=gateway.config.currency,
        success_url=success_url, cancel_url=cancel_url,
    ))
    if not checkout.url:
        raise Unavailable(f"Stripe returned checkout session {checkout.id} without a URL")
    return CheckoutLinkOut(session_id=checkout.id, url=checkout.url)


def complete_card_setup(
    session: Session, gateway: StripeGateway, limits: Limits, account_id: str,
    checkout_session_id: str,
) -> AutoTopupOut:
    """The success redirect of the card setup: read the session and its SetupIntent from
    Stripe and record the card (the webhook does the same; whichever is first wins)."""
    if not checkout_session_id.startswith("cs_"):
        raise NotFound(f"no checkout session {checkout_session_id!r}")
    checkout = gateway.retrieve_checkout_session(checkout_session_id)
    owner = payment_rules.account_from(checkout.metadata, checkout.client_reference_id)
    if owner != account_id or checkout.mode != "setup":
        raise NotFound(f"no checkout session {checkout_session_id!r}")
    card_saved(session, gateway, account_id, checkout.setup_intent_id)
    return view(session, account_id, limits, gateway.config)


def card_saved(
    session: Session, gateway: StripeGateway, account_id: str, setup_intent_id: str | None
) -> bool:
    """Record the payment method of a succeeded SetupIntent as the account's card; turns
    an ``awaiting_card`` auto top-up on. False when there is nothing to record yet."""
    if not setup_intent_id:
        return False
    intent = gateway.retrieve_setup_intent(setup_intent_id)
    if intent.status != "succeeded" or not intent.payment_method_id:
        return False
    row = repo.state(session, account_id, lock=True)
    if row is None:
        raise Invalid(f"setup intent {setup_intent_id} is for an account without auto top-up")
    if row["payment_method_id"] == intent.payment_method_id:
        return True
    label = gateway.describe_card(intent.payment_method_id)
    status = "on" if row["status"] == "awaiting_card" else row["status"]
    repo.update_state(session, account_id, payment_method_id=intent.payment_method_id,
                      card_label=label, status=status)
    log.info("auto top-up card saved", account=account_id, card=label)
    return True


def remove_card(
    session: Session, gateway: StripeGateway, limits: Limits, account_id: str, by_user: str
) -> AutoTopupOut:
    """Forget the card (detached from the Stripe customer too) and turn auto top-up off."""
    row = repo.state(session, account_id, lock=True)
    if row is None or row["payment_method_id"] is None:
        raise NotFound("no card is saved for auto top-up")
    gateway.detach_payment_method(str(row["payment_method_id"]))
    if row["consent_id"] is not None:
        repo.revoke_consent(session, row["consent_id"], by_user)
    repo.update_state(session, account_id, status="off", paused_reason=None,
                      payment_method_id=None, card_label=None)
    audit.record(session, "auto_topup.card_removed", account_id=account_id, target="auto_topup",
                 before=_audited(row), after=_audited(repo.state(session, account_id)))
    _cancel_waiting(session, account_id, f"card removed by {by_user}")
    return view(session, account_id, limits, gateway.config)


# --- the crossing ---------------------------------------------------------------------


def observe(session: Session, drops: Sequence[BalanceDrop], now: datetime | None = None
            ) -> list[uuid.UUID]:
    """Start one attempt per crossing (see the module's step 2). Returns the new attempts."""
    if not drops:
        return []
    by_account = {d.account_owner_id: d for d in drops}
    started: list[uuid.UUID] = []
    when = now or queue.utcnow()
    for row in repo.lock_watching(session, sorted(by_account)):
        drop = by_account[row["account_owner_id"]]
        if not wants_topup(drop.after, row["threshold"]):
            continue
        attempt_id = repo.insert_attempt(
            session, drop.account_owner_id, drop.entry_key, row["threshold"], row["amount"],
            drop.after, when,
        )
        if attempt_id is None:
            continue  # this crossing has its attempt, or another one is still active
        _enqueue_charge(session, attempt_id, drop.account_owner_id, when)
        started.append(attempt_id)
        log.info("auto top-up started", account=drop.account_owner_id,
                 attempt=str(attempt_id), balance=str(drop.after))
    return started


def _enqueue_charge(session: Session, attempt_id: uuid.UUID, account_id: str, at: datetime
                    ) -> None:
    queue.enqueue(
        session, CHARGE_TASK, {"attempt_id": str(attempt_id)},
        idempotency_key=f"auto-topup:charge:{attempt_id}:{at.isoformat()}",
        lock_key=f"auto-topup:{account_id}", run_at=at,
    )


def _notify(session: Session, attempt_id: uuid.UUID, account_id: str, kind: str, try_no: int,
            detail: str | None = None) -> None:
    """Publish one auto top-up event (its notice is a queued job), once: the key names the
    attempt, the event and the try."""
    attempt = repo.attempt(session, attempt_id)
    notices.publish(session, AccountEvent(
        "auto_topup", account_id, f"auto_topup:{attempt_id}:{kind}:{try_no}",
        {"event": kind, "attempt_id": attempt_id, "detail": detail,
         "amount": attempt["amount"] if attempt is not None else None},
    ))


# --- deciding and recording a charge -----------------------------------------------------


def begin_charge(
    session: Session, gateway: StripeGateway, limits: Limits, attempt_id: uuid.UUID,
    now: datetime | None = None,
) -> ChargePlan | None:
    """Decide whether this attempt charges now, under the account's auto top-up row lock
    (module step 3). None: nothing to charge (canceled, settled, or deferred by a cap)."""
    when = now or queue.utcnow()
    found = repo.attempt(session, attempt_id)
    if found is None:
        return None
    account = str(found["account_owner_id"])
    row = repo.state(session, account, lock=True)
    attempt = repo.attempt(session, attempt_id, lock=True)
    assert row is not None and attempt is not None  # the attempt references the row
    if attempt["status"] == "charging":  # a try whose answer was never recorded: replay it
        return _plan(session, gateway, row, attempt, int(attempt["tries"]))
    if attempt["status"] != "scheduled":
        return None
    if row["status"] != "on" or row["payment_method_id"] is None:
        repo.update_attempt(session, attempt_id, status="canceled", next_try_at=None,
                            outcome=f"auto top-up is {row['status']}")
        return None
    balance = credits.balance(session, account)
    if balance >= row["threshold"]:
        repo.update_attempt(session, attempt_id, status="canceled", next_try_at=None,
                            outcome=f"balance {balance} is back at or above the threshold")
        return None
    day = utc_day(when)
    count, spent = (row["day_count"], row["day_amount"]) if row["day"] == day else (0, Decimal(0))
    refused = cap_refusal(count, spent, attempt["amount"], limits)
    if refused:
        later = next_day_start(when)
        repo.update_state(session, account, day=day, day_count=count, day_amount=spent)
        repo.update_attempt(session, attempt_id, next_try_at=later,
                            outcome=f"deferred to {later.date()}: {refused}")
        _enqueue_charge(session, attempt_id, account, later)
        log.warning("auto top-up deferred by a daily limit", account=account, reason=refused)
        return None
    try_no = int(attempt["tries"]) + 1
    repo.update_state(session, account, day=day, day_count=count + 1,
                      day_amount=spent + attempt["amount"])
    repo.update_attempt(session, attempt_id, status="charging", tries=try_no,
                        next_try_at=None)
    return _plan(session, gateway, row, attempt, try_no)


def _plan(session: Session, gateway: StripeGateway, row: RowMapping, attempt: RowMapping,
          try_no: int) -> ChargePlan:
    account = str(row["account_owner_id"])
    return ChargePlan(
        attempt_id=attempt["id"], account_owner_id=account, try_no=try_no,
        customer_id=payments.ensure_customer(session, gateway, account),
        payment_method_id=str(row["payment_method_id"]), amount=attempt["amount"],
        currency=str(row["currency"]),
    )


def charge_metadata(plan: ChargePlan) -> dict[str, str]:
    return {ACCOUNT_METADATA_KEY: plan.account_owner_id,
            ATTEMPT_METADATA_KEY: str(plan.attempt_id)}


def record_outcome(
    session: Session, limits: Limits, plan: ChargePlan, outcome: ChargeOutcome,
    policy: BalancePolicy, now: datetime | None = None,
) -> str:
    """Record Stripe's answer to one try (module step 5). Returns the attempt's status."""
    when = now or queue.utcnow()
    account = plan.account_owner_id
    credits.lock_accounts(session, [account])  # lock order: ledger, then auto top-up row
    row = repo.state(session, account, lock=True)
    attempt = repo.attempt(session, plan.attempt_id, lock=True)
    assert row is not None and attempt is not None
    if attempt["status"] != "charging" or attempt["tries"] != plan.try_no:
        return str(attempt["status"])  # the webhook settled it first
    pi = outcome.payment_intent_id
    if outcome.status == "succeeded":
        assert pi is not None
        _credit(session, plan.attempt_id, account, pi, outcome.amount_minor,
                outcome.currency, policy, plan.try_no)
        return "succeeded"
    if outcome.status == "processing":
        repo.update_attempt(session, plan.attempt_id, status="processing",
                            payment_intent_id=pi, outcome="payment is processing at Stripe")
        return "processing"
    _release(session, row, plan.amount, when)
    if outcome.status == "requires_action":
        repo.update_attempt(
            session, plan.attempt_id, status="requires_action", payment_intent_id=pi,
            outcome="the card issuer asks the owner to authenticate (3-D Secure)",
        )
        _notify(session, plan.attempt_id, account, "action_required", plan.try_no)
        return "requires_action"
    return _failed(session, limits, row, plan.attempt_id, plan.try_no, pi,
                   _decline_text(outcome), when)


def _decline_text(outcome: ChargeOutcome) -> str:
    parts = [p for p in (outcome.code, outcome.decline_code) if p]
    return f"{outcome.message or 'declined'} ({', '.join(parts)})" if parts else (
        outcome.message or "declined")


def _release(session: Session, row: RowMapping, amount: Decimal, when: datetime) -> None:
    """A charge that took no money gives back its share of today's money cap."""
    if row["day"] == utc_day(when):
        repo.update_state(session, str(row["account_owner_id"]),
                          day_amount=max(row["day_amount"] - amount, Decimal(0)))


def _failed(
    session: Session, limits: Limits, row: RowMapping, attempt_id: uuid.UUID, try_no: int,
    pi: str | None, why: str, when: datetime,
) -> str:
    account = str(row["account_owner_id"])
    failures = int(row["consecutive_failures"]) + 1
    if failures >= limits.max_failures:
        reason = f"{failures} auto top-ups failed in a row; last: {why}"
        repo.update_state(session, account, consecutive_failures=failures, status="paused",
                          paused_reason=reason)
        audit.record(session, "auto_topup.paused", account_id=account, target="auto_topup",
                     before=_audited(row), after=_audited(repo.state(session, account)))
        repo.update_attempt(session, attempt_id, status="failed", payment_intent_id=pi,
                            outcome=why, next_try_at=None)
        _notify(session, attempt_id, account, "paused", try_no, reason)
        log.warning("auto top-up paused", account=account, reason=reason)
        return "failed"
    retry_at = when + backoff(limits.backoff_seconds, failures)
    repo.update_state(session, account, consecutive_failures=failures)
    repo.update_attempt(session, attempt_id, status="scheduled", payment_intent_id=pi,
                        outcome=f"{why}; retry at {retry_at.isoformat(timespec='seconds')}",
                        next_try_at=retry_at)
    _enqueue_charge(session, attempt_id, account, retry_at)
    _notify(session, attempt_id, account, "failed", try_no, why)
    return "scheduled"


def _credit(
    session: Session, attempt_id: uuid.UUID, account_id: str, pi: str, minor: int,
    currency: str, policy: BalancePolicy, try_no: int,
) -> None:
    """Post the purchase (exactly once per PaymentIntent) and close the attempt (once: the
    caller holds its row lock and saw it open)."""
    expected = currency.lower()
    payments.fulfil_payment(
        session, Payment(account_id, pi, payment_rules.from_minor(minor, expected), expected),
        policy,
    )
    repo.update_attempt(session, attempt_id, status="succeeded", payment_intent_id=pi,
                        outcome="paid and credited", next_try_at=None)
    repo.update_state(session, account_id, consecutive_failures=0)
    _notify(session, attempt_id, account_id, "succeeded", try_no)


def settle_paid(
    session: Session, attempt_key: str, account_id: str, pi: str, minor: int, currency: str,
    policy: BalancePolicy,
) -> bool:
    """A succeeded PaymentIntent of an attempt reported by Stripe (``payment_intent.
    succeeded``, or the owner's completion Checkout): credit it once and close the attempt
    if it is still open. Any order and number of deliveries credit once and notify once."""
    try:
        attempt_id = uuid.UUID(attempt_key)
    except ValueError:
        raise Invalid(f"payment {pi} names no auto top-up attempt") from None
    payments_repo.lock_payment(session, pi)
    credits.lock_accounts(session, [account_id])  # lock order: payment, ledger, auto top-up
    row = repo.state(session, account_id, lock=True)
    attempt = repo.attempt(session, attempt_id, lock=True)
    if row is None or attempt is None or attempt["account_owner_id"] != account_id:
        raise Invalid(f"payment {pi} names an unknown auto top-up attempt")
    if attempt["status"] in ACTIVE:  # a charging try's own record then finds it settled
        _credit(session, attempt_id, account_id, pi, minor, currency, policy,
                int(attempt["tries"]))
        return True
    # settled or canceled already: still make sure a taken payment is credited (once)
    expected = currency.lower()
    payments.fulfil_payment(
        session, Payment(account_id, pi, payment_rules.from_minor(minor, expected), expected),
        policy,
    )
    return False


def start_authentication(
    session: Session, gateway: StripeGateway, account_id: str, attempt_id: uuid.UUID,
    success_url: str, cancel_url: str,
) -> CheckoutLinkOut:
    """The owner completes an auto top-up their bank wants authenticated: a Checkout
    Session (Stripe's hosted page runs 3-D Secure) for the attempt's amount, naming the
    attempt, so its payment settles the attempt through :func:`settle_paid`."""
    attempt = repo.attempt(session, attempt_id)
    if attempt is None or attempt["account_owner_id"] != account_id:
        raise NotFound(f"no auto top-up {attempt_id}")
    if attempt["status"] != "requires_action":
        raise Conflict(f"auto top-up {attempt_id} does not wait for you (it is "
                       f"{attempt['status']})", code="auto_topup_not_waiting")
    config = gateway.config
    checkout = gateway.create_checkout_session(CheckoutRequest(
        customer_id=payments.ensure_customer(session, gateway, account_id),
        account_owner_id=account_id,
        amount_minor=payment_rules.to_minor(attempt["amount"], config.currency),
        currency=config.currency, success_url=success_url, cancel_url=cancel_url,
        description=f"{payments.PRODUCT_NAME} (auto top-up)",
        idempotency_key=f"hopsplane:autotopup-auth:{attempt_id}",
        metadata={ATTEMPT_METADATA_KEY: str(attempt_id)},
    ))
    if not checkout.url:
        raise Unavailable(f"Stripe returned checkout session {checkout.id} without a URL")
    return CheckoutLinkOut(session_id=checkout.id, url=checkout.url)


def payment_failed_later(session: Session, metadata: Mapping[str, str], pi: str,
                         why: str) -> bool:
    """``payment_intent.payment_failed`` of an auto top-up: the failure is counted by a job
    (it needs the limits of the settings), once per PaymentIntent."""
    attempt_key = metadata.get(ATTEMPT_METADATA_KEY)
    if not attempt_key:
        return False
    queue.enqueue(session, FAILED_TASK, {"attempt_id": attempt_key, "payment_intent": pi,
                                         "why": why},
                  idempotency_key=f"auto-topup:failed:{pi}")
    return True


def payment_failed(session: Session, limits: Limits, attempt_key: str, pi: str,
                   why: str) -> bool:
    """A failure Stripe reported later for an attempt it was still processing: counted
    like a decline (backoff, or pause after the limit). Any other state ignores it (a
    synchronous decline was already counted by the charge job)."""
    try:
        attempt_id = uuid.UUID(attempt_key)
    except ValueError:
        return False
    found = repo.attempt(session, attempt_id)
    if found is None:
        return False
    row = repo.state(session, str(found["account_owner_id"]), lock=True)
    attempt = repo.attempt(session, attempt_id, lock=True)
    assert row is not None and attempt is not None
    if attempt["status"] != "processing" or attempt["payment_intent_id"] != pi:
        return False
    _release(session, row, attempt["amount"], queue.utcnow())
    _failed(session, limits, row, attempt_id, int(attempt["tries"]), pi, why, queue.utcnow())
    return True


# --- what the owner and admins see ----------------------------------------------------


def view(session: Session, account_id: str, limits: Limits,
         config: StripeConfig | None = None) -> AutoTopupOut:
    row = repo.state(session, account_id)
    if row is None:
        credits.require_owner(session, account_id)
        return AutoTopupOut(account_owner_id=account_id, status="off",
                            max_per_day=limits.max_per_day,
                            max_amount_per_day=limits.max_amount_per_day)
    history = repo.attempts(session, account_id, 20)
    waiting = next((a for a in history if a["status"] == "requires_action"), None)
    agreed = repo.consent(session, row["consent_id"]) if row["consent_id"] else None
    today = utc_day(queue.utcnow())
    current = row["day"] == today
    currency = str(row["currency"])
    return AutoTopupOut(
        account_owner_id=account_id, status=row["status"], paused_reason=row["paused_reason"],
        threshold=row["threshold"], amount=row["amount"], currency=currency,
        card=row["card_label"],
        consent=ConsentOut.model_validate(dict(agreed)) if agreed else None,
        consecutive_failures=row["consecutive_failures"], today=today,
        today_count=row["day_count"] if current else 0,
        today_amount=row["day_amount"] if current else Decimal("0.00"),
        max_per_day=limits.max_per_day, max_amount_per_day=limits.max_amount_per_day,
        last_attempt=AttemptOut.model_validate(dict(history[0])) if history else None,
        action_required=AttemptOut.model_validate(dict(waiting)) if waiting else None,
        terms=terms_text(row["threshold"], row["amount"], currency, limits),
    )


def attempts(session: Session, account_id: str, limit: int = 50) -> list[AttemptOut]:
    return [AttemptOut.model_validate(dict(a)) for a in repo.attempts(session, account_id, limit)]
