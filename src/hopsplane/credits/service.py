"""Use cases of the ledger. Functions take the session first and never commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.credits import repository as repo
from hopsplane.credits.rules import EntryType, validate_posting, would_overdraw
from hopsplane.credits.schemas import LedgerEntryOut, Posting, PostResult, VerifyReport
from hopsplane.db.models import LedgerEntry
from hopsplane.errors import Conflict, Invalid, NotFound

MAX_PAGE = 500


def post(session: Session, posting: Posting) -> PostResult:
    """Append one entry to an account owner's ledger.

    Idempotent by ``posting.idempotency_key``: a repeat returns the original entry
    (``created=False``); the same key with a different account, type or amount is a
    Conflict. Postings to one account are serialised by a transaction-scoped lock, so
    they never need a retry; postings to different accounts run side by side.
    """
    amount = validate_posting(posting.entry_type, posting.amount, posting.idempotency_key)
    posting = _with_amount(posting, amount)
    _require_owner(session, posting.account_owner_id)

    repo.lock_account(session, posting.account_owner_id)
    if posting.entry_type is EntryType.REFUND:
        _check_refund(session, posting)
    elif posting.refund_of is not None:
        raise Invalid("only a refund may reference a purchase")

    try:
        entry = repo.insert_next(session, posting)
    except IntegrityError as exc:
        raise _integrity_error(exc, posting) from exc
    if entry is not None:
        return PostResult(LedgerEntryOut.model_validate(entry), created=True)

    original = repo.find_by_key(session, posting.idempotency_key)
    if original is None:  # pragma: no cover - the conflict row cannot vanish: no deletes
        raise Conflict("idempotency key collided with an entry that cannot be read")
    if not _same_posting(original, posting):
        raise Conflict(
            f"idempotency key {posting.idempotency_key!r} was already used for a "
            f"{original.type} of {original.amount} on account {original.account_owner_id}; "
            f"refusing a {posting.entry_type} of {posting.amount} "
            f"on account {posting.account_owner_id}"
        )
    return PostResult(LedgerEntryOut.model_validate(original), created=False)


def purchase_for_payment_intent(
    session: Session, payment_intent_id: str
) -> LedgerEntryOut | None:
    """The purchase recorded for a Stripe PaymentIntent, if any (at most one: unique index)."""
    entry = repo.find_purchase_by_payment_intent(session, payment_intent_id)
    return None if entry is None else LedgerEntryOut.model_validate(entry)


def stripe_purchases(session: Session, since: datetime | None = None) -> list[LedgerEntryOut]:
    """Purchases paid through Stripe (with a payment intent), posted at or after ``since``."""
    return [LedgerEntryOut.model_validate(e) for e in repo.stripe_purchases(session, since)]


def refunded_amount(session: Session, purchase_id: uuid.UUID) -> Decimal:
    """How much of a purchase has been refunded so far (zero or positive)."""
    return -repo.refunded_so_far(session, purchase_id)


def balance(session: Session, account_owner_id: str) -> Decimal:
    _require_owner(session, account_owner_id)
    return repo.balance(session, account_owner_id)


def history(
    session: Session, account_owner_id: str, *, limit: int = 50, before_seq: int | None = None
) -> list[LedgerEntryOut]:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
    _require_owner(session, account_owner_id)
    rows = repo.list_entries(session, account_owner_id, limit=limit, before_seq=before_seq)
    return [LedgerEntryOut.model_validate(r) for r in rows]


def verify(session: Session, account_owner_id: str | None = None) -> VerifyReport:
    """Check every account's chain (or one account's): sequence without gaps, each balance
    the previous balance plus the amount, each link pointing at its predecessor."""
    accounts, entries = repo.ledger_size(session, account_owner_id)
    return VerifyReport(accounts, entries, repo.chain_breaks(session, account_owner_id))


def _require_owner(session: Session, account_id: str) -> None:
    exists, owner = repo.account_owner_of(session, account_id)
    if not exists:
        raise NotFound(f"no account {account_id!r}")
    if owner is not None:
        raise Invalid(
            f"{account_id!r} is a team member of account {owner!r}; "
            "ledger entries belong to the account owner"
        )


def _check_refund(session: Session, posting: Posting) -> None:
    if posting.refund_of is None:
        raise Invalid("a refund must reference the purchase it reverses (refund_of)")
    purchase = repo.find_by_id(session, posting.refund_of)
    if purchase is None or purchase.account_owner_id != posting.account_owner_id:
        raise NotFound(f"no purchase {posting.refund_of} on account {posting.account_owner_id!r}")
    if purchase.type != EntryType.PURCHASE:
        raise Invalid(f"entry {purchase.id} is a {purchase.type}, only purchases can be refunded")
    if repo.find_by_key(session, posting.idempotency_key) is not None:
        return  # a replay: post() returns (or refuses) the original
    left = purchase.amount + repo.refunded_so_far(session, purchase.id)
    if -posting.amount > left:
        raise Conflict(
            f"refund of {-posting.amount} exceeds what is left of purchase {purchase.id} ({left})"
        )
    current = repo.balance(session, posting.account_owner_id)
    if would_overdraw(posting.entry_type, posting.amount, current):
        raise Conflict(
            f"refund of {-posting.amount} would take the balance ({current}) below zero"
        )


def _same_posting(entry: LedgerEntry, posting: Posting) -> bool:
    return (
        entry.account_owner_id == posting.account_owner_id
        and entry.type == posting.entry_type.value
        and entry.amount == posting.amount
        and entry.refund_of == posting.refund_of
    )


def _with_amount(posting: Posting, amount: Decimal) -> Posting:
    from dataclasses import replace

    return replace(posting, amount=amount)


_CONSTRAINT_MESSAGES = {
    "credits_ledger_only_usage_overdraws": "only usage may take a balance below zero",
    "credits_ledger_purchase_payment_intent_key": (
        "a purchase for this Stripe payment intent is already recorded"
    ),
    "credits_ledger_owner_fkey": "ledger entries belong to an existing account owner",
}


def _integrity_error(exc: IntegrityError, posting: Posting) -> Exception:
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    message = _CONSTRAINT_MESSAGES.get(constraint or "")
    if message is None:
        return exc  # not a user mistake: let it surface as a bug
    return Conflict(f"{message} (account {posting.account_owner_id!r})")
