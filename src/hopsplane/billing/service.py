"""Use cases of billing. Functions take the session first and never commit.

The run over all accounts (one transaction per batch) is the job in
:mod:`hopsplane.billing.run`; this module is what one transaction does.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import structlog
from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.billing import repository as repo
from hopsplane.billing.rules import (
    member_share,
    parse_unit_price,
    usage_description,
)
from hopsplane.billing.schemas import BatchOutcome, PriceOverrideOut, UsageDay, UsageReport
from hopsplane.credits import service as credits
from hopsplane.credits.origins import UsageCharge
from hopsplane.credits.rules import DEFAULT_THRESHOLDS, EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.errors import Conflict, Invalid
from hopsplane.hooks import AccountHooks
from hopsplane.money import cost_of

log = structlog.get_logger(__name__)

MAX_USAGE_DAYS = 366
DEFAULT_SLICE_DAYS = 366
"""Days of one account charged per transaction (``HOPSPLANE_BILLING_SLICE_DAYS``)."""
NOTICE_KINDS = frozenset({"low_balance", "recovered"})  # balance events told by email


def bill_batch(
    session: Session,
    accounts: list[str],
    through: date,
    *,
    hooks: AccountHooks | None = None,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
    slice_days: int = DEFAULT_SLICE_DAYS,
) -> BatchOutcome:
    """Charge the uncharged parts of the accounts' usage up to ``through``: at most
    ``slice_days`` days of each account, its oldest first; the accounts that have more are
    in the outcome's ``more``, for the caller to charge in another transaction.

    Under the accounts' ledger locks, the rows with ``total_cost > billed_amount`` are
    locked and marked charged (``billed_amount := total_cost``), and one usage debit per
    row is posted set-based for the difference (a late upsert that raised a billed day is
    charged only for what it added), all in this transaction. A repeat finds nothing.
    """
    credits.lock_accounts(session, accounts)
    charges = repo.take_pending_charges(session, accounts, through, slice_days)
    if not charges:
        return BatchOutcome(len(accounts), 0, 0, Decimal("0.00"))
    postings = [
        Posting(
            c.account_owner_id,
            EntryType.USAGE,
            -c.due,
            credits.ledger_key(UsageCharge(c.account_owner_id, c.date, c.total_cost)),
            description=usage_description(c.date, c.compute_units, c.total_cost,
                                          c.billed_amount),
        )
        for c in charges
    ]
    result = credits.post_many(session, postings, hooks=hooks, thresholds=thresholds)
    return BatchOutcome(
        len(accounts),
        len(charges),
        result.created,
        sum((c.due for c in charges), Decimal(0)),
        sum(1 for e in result.events if e.kind == "suspended"),
        sum(1 for e in result.events if e.kind in NOTICE_KINDS),
        tuple(sorted(a for a, n in Counter(c.account_owner_id for c in charges).items()
                     if n >= slice_days)),
    )


def unbilled_among(session: Session, accounts: list[str], through: date) -> list[str]:
    """Those of ``accounts`` that still have usage up to ``through`` left to charge."""
    if not accounts:
        return []
    return repo.accounts_to_bill(session, through, after=None, limit=len(accounts),
                                 among=accounts)


def set_price_override(
    session: Session,
    account_id: str,
    effective_from: date,
    unit_price: object,
    *,
    reason: str,
    set_by: str | None = None,
) -> PriceOverrideOut:
    """Set the account's unit price from ``effective_from`` on (a platform admin's act).

    Usage rows from that date are repriced at once (and rows written later take the
    price when written). Days already (partly) charged cannot be repriced: Conflict.
    """
    price = parse_unit_price(unit_price)
    cleaned = " ".join((reason or "").split())
    if not cleaned:
        raise Invalid("a reason is required for a price override")
    credits.require_owner(session, account_id)
    credits.lock_accounts(session, [account_id])  # billing of this account waits
    billed = repo.billed_dates_from(session, account_id, effective_from)
    if billed is not None:
        raise Conflict(
            f"usage of {account_id!r} is already charged up to {billed}; "
            f"a price can only take effect after that day"
        )
    before = [{"unit_price": o.unit_price, "reason": o.reason}
              for o in repo.list_overrides(session, account_id)
              if o.effective_from == effective_from]
    override = repo.upsert_override(
        session, account_id, effective_from, price, cleaned, set_by
    )
    audit.record(session, "billing.price_override", account_id=account_id,
                 target=f"price_from:{effective_from}", before=before[0] if before else None,
                 after={"unit_price": price, "reason": cleaned})
    repo.reprice_from(session, account_id, effective_from)
    return PriceOverrideOut.model_validate(override)


def price_overrides(session: Session, account_id: str) -> list[PriceOverrideOut]:
    credits.require_owner(session, account_id)
    rows = repo.list_overrides(session, account_id)
    return [PriceOverrideOut.model_validate(o) for o in rows]


def usage_report(
    session: Session,
    account_id: str,
    date_from: date,
    date_to: date,
    *,
    member_id: str | None = None,
    members: frozenset[str] | None = None,
) -> UsageReport:
    """Daily usage of an account with the per-user breakdown. With ``member_id`` (a team
    member asking), only that member's share: their units, their cost at the day's price
    (rounded by the one rule), and a breakdown holding only them. With ``members`` (an
    organization), the share of those people together, priced the same way."""
    if member_id is not None:
        members = frozenset({member_id})
    if date_to < date_from:
        raise Invalid("`to` must not be before `from`")
    if (date_to - date_from).days >= MAX_USAGE_DAYS:
        raise Invalid(f"at most {MAX_USAGE_DAYS} days per request")
    credits.require_owner(session, account_id)
    days: list[UsageDay] = []
    for row in repo.usage_days(session, account_id, date_from, date_to):
        breakdown = {k: Decimal(str(v)) for k, v in row.user_breakdown.items()}
        if members is None:
            days.append(UsageDay.model_validate(
                {**_row_dict(row), "user_breakdown": breakdown}))
            continue
        shares = {m: member_share(row.user_breakdown, m) for m in sorted(members)}
        shares = {m: u for m, u in shares.items() if u}
        units = sum(shares.values(), Decimal(0))
        if units == 0:
            continue
        cost = cost_of(units, row.unit_price)
        days.append(UsageDay(
            date=row.date, compute_units=units, unit_price=row.unit_price, total_cost=cost,
            billed_amount=min(cost, row.billed_amount), user_breakdown=shares,
        ))
    return UsageReport(
        account_owner_id=account_id,
        date_from=date_from,
        date_to=date_to,
        scope="account" if members is None else "member" if member_id else "organization",
        days=days,
        total_units=sum((d.compute_units for d in days), Decimal(0)),
        total_cost=sum((d.total_cost for d in days), Decimal("0.00")),
    )


def _row_dict(row: object) -> dict[str, object]:
    return {
        k: getattr(row, k)
        for k in ("date", "compute_units", "unit_price", "total_cost", "billed_amount")
    }
