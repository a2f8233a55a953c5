"""Use cases of the ledger. Functions take the session first and never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.credits import origins
from hopsplane.credits import repository as repo
from hopsplane.credits.origins import GrantOrigin, Origin, RefundOrigin
from hopsplane.credits.rules import (
    DEFAULT_THRESHOLDS,
    MAX_KEY_LENGTH,
    EntryType,
    promotional_part,
    standing_may_change,
    validate_expiry,
    validate_posting,
    would_overdraw,
)
from hopsplane.credits.schemas import (
    BalanceEvent,
    BatchResult,
    LedgerEntryOut,
    Posting,
    PostResult,
    PromotionalCredit,
    Standing,
    VerifyReport,
)
from hopsplane.db.models import LedgerEntry
from hopsplane.errors import Conflict, Invalid, NotFound
from hopsplane.hooks import AccountHooks, BalanceDrop
from hopsplane.money import CENT, parse_amount

MAX_PAGE = 500

# Precise error codes of the ledger's refusals (409), documented on the routes that post.
KEY_REUSED = "idempotency_key_reused"
REFUND_EXCEEDS_PURCHASE = "refund_exceeds_purchase"
INSUFFICIENT_BALANCE = "insufficient_balance"
CONFLICT_CODES = (KEY_REUSED, REFUND_EXCEEDS_PURCHASE, INSUFFICIENT_BALANCE)


def ledger_key(origin: Origin) -> str:
    """The ledger's idempotency key of a posting from ``origin``: the one place keys are
    made. Every key starts with its origin's prefix (:data:`origins.PREFIXES`, a prefix-free
    set), so keys of two origins never meet, whatever a person supplied."""
    prefix = origins.PREFIXES[type(origin)]
    match origin:
        case origins.StripePurchase(payment_intent_id=intent):
            rest = intent
        case origins.StripeRefund(payment_intent_id=intent, cumulative_refunded_minor=minor):
            rest = f"{intent}:{minor}"
        case origins.UsageCharge(account_owner_id=account, day=day, charged_total=total):
            rest = f"{account}:{day.isoformat()}:{int((total / CENT).to_integral_value())}"
        case origins.LegacyBalance(user_id=user, kind=kind):
            rest = f"{user}:{kind}"
        case origins.GrantExpiry(grant_id=grant_id):
            rest = grant_id
        case origins.StripeDispute(dispute_id=dispute) | origins.StripeDisputeWon(
            dispute_id=dispute
        ):
            rest = dispute
        case origins.SuppliedKey(key=supplied):
            if not supplied or supplied != supplied.strip():
                raise Invalid("the idempotency key must be non-empty, without outer spaces")
            rest = supplied
    key = prefix + rest
    if len(key) > MAX_KEY_LENGTH:
        raise Invalid(f"the idempotency key is longer than {MAX_KEY_LENGTH - len(prefix)}")
    return key


def post(
    session: Session,
    posting: Posting,
    *,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> PostResult:
    """Append one entry to an account owner's ledger.

    Idempotent by ``posting.idempotency_key``: a repeat returns the original entry
    (``created=False``); the same key with a different account, type or amount is a
    Conflict. Postings to one account are serialised by a transaction-scoped lock, so
    they never need a retry; postings to different accounts run side by side.

    Every posting also brings the account's standing up to date (suspended at or below
    zero, resumed above it, a low-balance notice once per downward threshold crossing),
    published (``hopsplane.notices``: each change's notice is a job queued in this
    transaction). With ``hooks``, the suspension/resumption is announced through them
    right away (in this transaction: exactly once); without, a
    ``credits.announce_standing`` job queued in this transaction announces it. Callers
    that know the settings pass
    ``thresholds=settings.thresholds`` (the default is $10, $1, $0).
    """
    amount = validate_posting(posting.entry_type, posting.amount, posting.idempotency_key)
    posting = _with_amount(posting, amount)
    if posting.entry_type is EntryType.REFUND:
        # a refund is checked against its purchase under the account's lock first
        exists, owner = repo.owner_and_lock(session, posting.account_owner_id)
        _refuse_non_owner(posting.account_owner_id, exists, owner)
        if _check_refund(session, posting):
            # A replay answers with the original before any insert is tried: the insert
            # would chain after today's balance, and the database's overdraw check runs
            # before its key check, so a retry of a refund the balance no longer covers
            # was refused (409) instead of getting its entry.
            return _replay(session, posting)
    elif posting.refund_of is not None:
        raise Invalid("only a refund may reference a purchase")

    try:
        # owner check, lock and insert in one round trip
        exists, owner, entry = repo.post_next(session, posting)
    except IntegrityError as exc:
        raise _integrity_error(exc, posting) from exc
    _refuse_non_owner(posting.account_owner_id, exists, owner)
    if entry is not None:
        events: tuple[BalanceEvent, ...] = ()
        if standing_may_change(entry.amount, entry.balance, thresholds):
            events = tuple(
                _apply_standing(
                    session, [posting.account_owner_id], thresholds,
                    announced=hooks is not None,
                )
            )
            if hooks is not None:
                announce(session, events, hooks)
        if posting.entry_type is EntryType.USAGE:
            _watch(session, hooks, [(posting.idempotency_key, (
                posting.account_owner_id, entry.amount, entry.balance))])
        return PostResult(entry, created=True, events=events)

    return _replay(session, posting)


def _replay(session: Session, posting: Posting) -> PostResult:
    """The original entry of a posting whose key is taken (Conflict when it differs)."""
    original = repo.find_by_key(session, posting.idempotency_key)
    _refuse_other_posting(original, posting)
    return PostResult(LedgerEntryOut.model_validate(original), created=False)


def _refuse_other_posting(original: Any, posting: Posting) -> None:
    """Conflict when the entry holding a posting's idempotency key is another posting."""
    if original is None:  # pragma: no cover - the conflict row cannot vanish: no deletes
        raise Conflict("idempotency key collided with an entry that cannot be read")
    if not _same_posting(original, posting):
        raise Conflict(
            f"idempotency key {posting.idempotency_key!r} was already used for a "
            f"{original.type} of {original.amount} on account {original.account_owner_id}; "
            f"refusing a {posting.entry_type} of {posting.amount} "
            f"on account {posting.account_owner_id}",
            code=KEY_REUSED,
        )


def post_now(
    conn: psycopg.Connection[Any],
    posting: Posting,
    *,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
    durable: bool | None = None,
) -> PostResult:
    """:func:`post` as its own transaction in one round trip, on an idle psycopg
    connection (autocommit) the caller owns: the hot path of a posting, with no ORM
    session and no lock held while Python runs (see ``repository.post_now``).

    Same validation, idempotency and standing as :func:`post`; there are no hooks, so a
    suspension or resumption is announced by the ``credits.announce_standing`` job its
    statement queues (with the notices, in the posting's transaction). Refunds go
    through :func:`post` (their purchase check runs under the lock before the posting).
    ``durable`` (default: every type but usage) waits for the WAL flush before
    returning; a usage debit does not, since its source re-posts it under the same key
    after a crash (billing charges what ``billed_amount``, lost in the same transaction,
    says is not charged)."""
    amount = validate_posting(posting.entry_type, posting.amount, posting.idempotency_key)
    posting = _with_amount(posting, amount)
    if posting.entry_type is EntryType.REFUND or posting.refund_of is not None:
        raise Invalid("refunds are posted with post(): the purchase is checked first")
    if durable is None:
        durable = posting.entry_type is not EntryType.USAGE
    try:
        exists, owner, entry, events = repo.post_now(conn, posting, thresholds,
                                                     durable=durable)
    except IntegrityError as exc:
        raise _integrity_error(exc, posting) from exc
    _refuse_non_owner(posting.account_owner_id, exists, owner)
    if entry is not None:
        return PostResult(entry, created=True, events=tuple(events))
    original = repo.entry_by_key_now(conn, posting.idempotency_key)
    _refuse_other_posting(original, posting)
    assert original is not None
    return PostResult(original, created=False)


def post_many(
    session: Session,
    postings: Sequence[Posting],
    *,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> BatchResult:
    """Append many entries (to many accounts) set-based: the accounts are locked in
    sorted order, every new entry is inserted by one INSERT ... SELECT chained after its
    account's head, and the standings of the batch are updated by one more statement.

    Same idempotency as :func:`post` (a known key with the same content is a replay; with
    other content the whole batch is refused with Conflict). Postings to one account keep
    their order. Refunds go through :func:`post` (they need the purchase check).
    """
    if not postings:
        return BatchResult(0, 0)
    checked: dict[str, Posting] = {}
    for p in postings:
        if p.entry_type is EntryType.REFUND or p.refund_of is not None:
            raise Invalid("refunds are posted one at a time with post()")
        amount = validate_posting(p.entry_type, p.amount, p.idempotency_key)
        p = _with_amount(p, amount)
        seen = checked.get(p.idempotency_key)
        if seen is not None and seen != p:
            raise Conflict(f"idempotency key {p.idempotency_key!r} appears twice in the batch")
        checked[p.idempotency_key] = p
    unique = list(checked.values())
    accounts = sorted({p.account_owner_id for p in unique})
    owners = repo.owners_among(session, accounts)
    for account in accounts:
        if account not in owners:
            raise NotFound(f"no account {account!r}")
        if owners[account] is not None:
            raise Invalid(f"{account!r} is a team member; ledger entries belong to the owner")

    repo.lock_accounts(session, accounts)
    try:
        inserted = repo.insert_many(session, unique)
    except IntegrityError as exc:
        raise _integrity_error(exc, unique[0]) from exc
    replays = [p for p in unique if p.idempotency_key not in inserted]
    if replays:
        originals = {
            e.idempotency_key: e
            for e in repo.find_by_keys(session, [p.idempotency_key for p in replays])
        }
        for p in replays:
            original = originals.get(p.idempotency_key)
            if original is None or not _same_posting(original, p):
                raise Conflict(
                    f"idempotency key {p.idempotency_key!r} was already used for another entry",
                    code=KEY_REUSED,
                )
    touched = sorted({
        account for account, amount, after in inserted.values()
        if standing_may_change(amount, after, thresholds)
    })
    events: tuple[BalanceEvent, ...] = ()
    if touched:
        events = tuple(_apply_standing(
            session, touched, thresholds, announced=hooks is not None))
        if hooks is not None:
            announce(session, events, hooks)
    usage = {p.idempotency_key for p in unique if p.entry_type is EntryType.USAGE}
    _watch(session, hooks, [(k, v) for k, v in inserted.items() if k in usage])
    return BatchResult(len(inserted), len(replays), events)


def _watch(
    session: Session,
    hooks: AccountHooks | None,
    entries: Sequence[tuple[str, tuple[str, Decimal, Decimal]]],
) -> None:
    """Tell the balance-drop listeners registered on the hooks (auto top-up) what the usage
    entries just appended did to each account, one :class:`BalanceDrop` per account, in
    this transaction."""
    if not entries or hooks is None or not hooks.listeners.balance_drop:
        return
    drops: dict[str, BalanceDrop] = {}
    for key, (account, amount, after) in entries:
        seen = drops.get(account)
        before = after - amount
        if seen is None:
            drops[account] = BalanceDrop(account, before, after, key)
        elif after < seen.after:  # usage only takes: the lowest is the latest
            drops[account] = BalanceDrop(account, max(seen.before, before), after, key)
        else:
            drops[account] = BalanceDrop(account, max(seen.before, before), seen.after,
                                         seen.entry_key)
    hooks.listeners.announce_balance_drops(
        session, sorted(drops.values(), key=lambda d: d.account_owner_id))


def announce(session: Session, events: Sequence[BalanceEvent], hooks: AccountHooks) -> None:
    """Call the AccountHooks seam for the suspensions and resumptions of a posting, in
    the caller's transaction. The events were stored as dispatched in this same
    transaction, once per change of standing (the standing itself is updated in the same
    transaction): a rollback takes back both. The notices of the changes are queued jobs
    (``hopsplane.notices``)."""
    for event in events:
        if event.kind == "suspended":
            hooks.account_suspended(session, event.account_owner_id)
        elif event.kind == "resumed":
            hooks.account_resumed(session, event.account_owner_id)


def _apply_standing(
    session: Session, account_ids: list[str], thresholds: tuple[Decimal, ...], *,
    announced: bool,
) -> list[BalanceEvent]:
    """The standing rule, and each suspension or resumption it decides recorded in the
    audit log (as the actor of the transaction: a billing run, a grant, a payment)."""
    events = repo.apply_standing(session, account_ids, thresholds, announced=announced)
    audit.record_many(session, [
        audit.Decision(
            f"credits.{event.kind}", event.account_owner_id, f"ledger_seq:{event.ledger_seq}",
            before={"suspended": event.kind == "resumed"},
            after={"suspended": event.kind == "suspended", "balance": event.balance},
        )
        for event in events if event.kind in ("suspended", "resumed")
    ])
    return events


def grant(
    session: Session,
    account_owner_id: str,
    amount: object,
    *,
    reason: str,
    origin: GrantOrigin,
    granted_by: str | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> PostResult:
    """A platform grant (free credit). The reason is required and kept in the entry.

    With ``expires_at`` it is promotional credit: usage draws it before any credit that
    expires later or never, and what is left of it at ``expires_at`` is removed by an
    ``expiry`` entry (:func:`hopsplane.credits.expiry.expire_due`). ``now`` is the entry's
    time (the fake clock of tests; default the transaction's)."""
    text_reason = _reason(reason)
    idempotency_key = ledger_key(origin)
    if expires_at is not None:
        expires_at = validate_expiry(expires_at, now or repo.db_now(session))
    by = f" (by {granted_by})" if granted_by else ""
    result = post(
        session,
        Posting(
            account_owner_id,
            EntryType.GRANT,
            validate_posting(EntryType.GRANT, amount, idempotency_key),
            idempotency_key,
            description=f"grant: {text_reason}{by}",
            expires_at=expires_at,
            at=now,
        ),
        hooks=hooks,
        thresholds=thresholds,
    )
    if result.created:
        audit.record(session, "credits.grant", account_id=account_owner_id,
                     target=f"ledger_entry:{result.entry.id}", after={
                         "amount": result.entry.amount, "reason": text_reason,
                         "expires_at": expires_at, "balance": result.entry.balance})
    return result


def refund(
    session: Session,
    account_owner_id: str,
    purchase_id: uuid.UUID,
    amount: object,
    *,
    reason: str,
    origin: RefundOrigin,
    refunded_by: str | None = None,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> PostResult:
    """Refund (part of) a purchase. ``amount`` is what goes back to the customer, given
    as a positive number; the entry is negative. The reason is required."""
    text_reason = _reason(reason)
    idempotency_key = ledger_key(origin)
    value = parse_amount(amount)
    if value <= 0:
        raise Invalid(
            "a refund's amount is what goes back to the customer, given as a positive "
            f"number: got {value}"
        )
    validate_posting(EntryType.REFUND, -value, idempotency_key)
    purchase = repo.find_by_id(session, purchase_id)
    intent = purchase.stripe_payment_intent_id if purchase is not None else None
    by = f" (by {refunded_by})" if refunded_by else ""
    result = post(
        session,
        Posting(
            account_owner_id,
            EntryType.REFUND,
            -value,
            idempotency_key,
            description=f"refund of {purchase_id}: {text_reason}{by}",
            stripe_payment_intent_id=intent,
            refund_of=purchase_id,
        ),
        hooks=hooks,
        thresholds=thresholds,
    )
    if result.created:
        audit.record(session, "credits.refund", account_id=account_owner_id,
                     target=f"ledger_entry:{result.entry.id}", after={
                         "amount": result.entry.amount, "reason": text_reason,
                         "purchase_id": purchase_id, "balance": result.entry.balance})
    return result


def refresh_standings(
    session: Session, thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS
) -> list[BalanceEvent]:
    """Bring the standing of every account at or below a threshold up to date, for
    balances that did not come through :func:`post` (the legacy cleanup writes its entries
    set-based). Notices are published, and suspensions are announced to the hooks by the
    ``credits.announce_standing`` jobs queued in this transaction."""
    if not thresholds:
        return []
    accounts = repo.accounts_at_or_below(session, max(thresholds))
    if not accounts:
        return []
    return _apply_standing(session, accounts, thresholds, announced=False)


def is_suspended(session: Session, account_owner_id: str) -> bool:
    """Whether the account's standing is suspended now (False for an unknown account)."""
    suspended, _ = repo.standing(session, account_owner_id)
    return suspended


def standing(session: Session, account_owner_id: str) -> Standing:
    """Balance and standing (suspended, announced low-balance threshold) of an account."""
    exists, owner, suspended, level, balance, now, expiring = repo.standing_of(
        session, account_owner_id)
    _refuse_non_owner(account_owner_id, exists, owner)
    # most accounts hold no expiring credit: one statement answers, nothing is drawn
    grants = [
        PromotionalCredit(amount=amount, expires_at=at)
        for amount, at in (repo.promotional(session, account_owner_id, now)
                           if expiring and now is not None else [])
    ]
    return Standing(
        account_owner_id=account_owner_id,
        balance=balance,
        suspended=suspended,
        notice_threshold=level,
        promotional=promotional_part(balance, [g.amount for g in grants]),
        promotional_grants=grants,
    )


def _reason(reason: str) -> str:
    cleaned = " ".join((reason or "").split())
    if not cleaned:
        raise Invalid("a reason is required (it is recorded in the entry's description)")
    if len(cleaned) > 500:
        raise Invalid("the reason must be at most 500 characters")
    return cleaned
def purchase_for_payment_intent(
    session: Session, payment_intent_id: str
) -> LedgerEntryOut | None:
    """The purchase recorded for a Stripe PaymentIntent, if any (at most one: unique index)."""
    entry = repo.find_purchase_by_payment_intent(session, payment_intent_id)
    return None if entry is None else LedgerEntryOut.model_validate(entry)


def entry_by_key(session: Session, idempotency_key: str) -> LedgerEntryOut | None:
    """The entry posted under a ledger key (made by :func:`ledger_key`), if any."""
    entry = repo.find_by_key(session, idempotency_key)
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
    the previous balance plus the amount, each link pointing at its predecessor; and its
    draws (every entry's lot, each lot's open part its amount minus its draws, no credit
    drawn at or after its expiry but by its own expiry, open credit minus open debt equal
    to the balance). An
    unknown account is NotFound (an empty report would read as "ok").

    One account is caught up first (its draws up to its head). For every account the
    draws are checked up to each account's checkpoint: catch the accounts up first with
    :func:`accounts_behind` and :func:`catch_up`, a transaction per batch (``hopsplane
    credits verify`` does), since one transaction cannot hold every account's lock."""
    if account_owner_id is not None:
        _require_owner(session, account_owner_id)
        repo.catch_up(session, [account_owner_id])
    accounts, entries = repo.ledger_size(session, account_owner_id)
    breaks = repo.chain_breaks(session, account_owner_id)
    breaks += repo.draw_breaks(session, account_owner_id)
    return VerifyReport(accounts, entries, breaks)


def accounts_behind(session: Session) -> list[str]:
    """Accounts whose latest entries are not drawn yet (sorted)."""
    return repo.accounts_behind(session)


def catch_up(session: Session, account_owner_ids: Sequence[str]) -> int:
    """Draw every entry of these accounts that is not drawn yet, each under its lock
    (held until the transaction ends; keep batches to a few hundred accounts). Returns
    how many entries were drawn."""
    if not account_owner_ids:
        return 0
    return repo.catch_up(session, sorted(set(account_owner_ids)))


def lock_accounts(session: Session, account_owner_ids: Sequence[str]) -> None:
    """Take the ledger locks of these accounts (sorted, so batches never deadlock) until
    the transaction ends. For use cases that must read and post consistently (billing
    reads the usage to charge under the lock)."""
    repo.lock_accounts(session, sorted(set(account_owner_ids)))


def require_owner(session: Session, account_id: str) -> None:
    """NotFound for an unknown user, Invalid for a team member."""
    _require_owner(session, account_id)


def _require_owner(session: Session, account_id: str) -> None:
    exists, owner = repo.account_owner_of(session, account_id)
    _refuse_non_owner(account_id, exists, owner)


def _refuse_non_owner(account_id: str, exists: bool, owner: str | None) -> None:
    if not exists:
        raise NotFound(f"no account {account_id!r}")
    if owner is not None:
        raise Invalid(
            f"{account_id!r} is a team member of account {owner!r}; "
            "ledger entries belong to the account owner"
        )


def _check_refund(session: Session, posting: Posting) -> bool:
    """Refuse a refund its purchase or the balance cannot take; True for a replay (its key
    is posted already: :func:`post` answers with the original)."""
    if posting.refund_of is None:
        raise Invalid("a refund must reference the purchase it reverses (refund_of)")
    purchase = repo.find_by_id(session, posting.refund_of)
    if purchase is None or purchase.account_owner_id != posting.account_owner_id:
        raise NotFound(f"no purchase {posting.refund_of} on account {posting.account_owner_id!r}")
    if purchase.type != EntryType.PURCHASE:
        raise Invalid(f"entry {purchase.id} is a {purchase.type}, only purchases can be refunded")
    if repo.find_by_key(session, posting.idempotency_key) is not None:
        return True  # a replay: post() returns (or refuses) the original
    left = purchase.amount + repo.refunded_so_far(session, purchase.id)
    if -posting.amount > left:
        raise Conflict(
            f"refund of {-posting.amount} exceeds what is left of purchase {purchase.id} ({left})",
            code=REFUND_EXCEEDS_PURCHASE,
        )
    current = repo.balance(session, posting.account_owner_id)
    if would_overdraw(posting.entry_type, posting.amount, current, posting.idempotency_key):
        raise Conflict(
            f"refund of {-posting.amount} would take the balance ({current}) below zero",
            code=INSUFFICIENT_BALANCE,
        )
    return False


def _same_posting(entry: LedgerEntry | LedgerEntryOut, posting: Posting) -> bool:
    return (
        entry.account_owner_id == posting.account_owner_id
        and entry.type == posting.entry_type.value
        and entry.amount == posting.amount
        and entry.refund_of == posting.refund_of
        and entry.expires_at == posting.expires_at
        and entry.refers_to == posting.refers_to
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


def entry_count(session: Session, account_owner_id: str) -> int:
    """How many ledger entries the account has (a non-empty ledger is something of value)."""
    return repo.entry_count(session, account_owner_id)
