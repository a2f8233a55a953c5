"""Member budgets (issue 15): an owner's monthly budget, in money, for a member of their
team. Functions take the session first and never commit.

What a budget does, exactly:

- **Spend** is the member's share of the account's priced usage in the UTC calendar month:
  for each day, the member's units of ``usage_tracking.user_breakdown`` at the day's unit
  price, rounded to the cent (the same share, priced the same way, that the usage pages
  and ``GET /v1/account/usage`` show a member). Usage not attributed to any member counts
  for nobody's budget.
- **Notices**: when spend reaches 80 % and 100 % of the budget, the owner and the member
  are each told once (per member, month, threshold and budget amount: a new amount
  re-arms the thresholds). The budget row keeps the highest threshold announced
  (``noticed_*``); each new one is a ``budget_reached`` event published in the
  evaluation's transaction (``hopsplane.notices``: a queued job the worker sends).
- **Enforcement** (per budget): once spend reaches the budget, the member's Hopsworks user
  is deactivated through the account's status-sync job (the job that suspensions use);
  the account's other users go on. It is reactivated at the first evaluation of the next
  month, or at once when the owner raises the budget above the spend, turns enforcement
  off or removes the budget.
- **When**: budgets are evaluated after every billing run (every 15 minutes, and for
  the accounts a usage collection changed, after the billing job it queues: every 5
  minutes by default) and whenever the owner changes one. So a member is stopped
  when the evaluation that follows the usage crossing the budget completes: usage
  already consumed up to then is charged to the account (it cannot be unconsumed), and
  nothing the member runs after the deactivation is possible on Hopsworks. This is a hard
  cap in that sense: the member cannot keep spending once the crossing is known; it is
  not a pre-authorisation of each workload.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import structlog
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.audit import service as audit
from hopsplane.billing import repository as repo
from hopsplane.billing.rules import (
    budget_notices_due,
    budget_stops,
    budget_thresholds_reached,
    month_of,
    next_month,
    today_utc,
)
from hopsplane.billing.schemas import BudgetOutcome, BudgetRow, MemberBudgetOut
from hopsplane.errors import NotFound
from hopsplane.hooks import AccountHooks
from hopsplane.money import cost_of, parse_amount
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent

log = structlog.get_logger(__name__)

MIN_BUDGET = Decimal("0.01")


def set_budget(
    session: Session,
    account_owner_id: str,
    member_id: str,
    monthly_budget: object,
    *,
    enforce: bool,
    hooks: AccountHooks,
    set_by: str | None = None,
    today: date | None = None,
) -> MemberBudgetOut:
    """Set (or change) a member's monthly budget and evaluate it at once: raising it above
    the spend, or turning enforcement off, reactivates a member it stopped in this
    transaction; lowering it under the spend stops them (with enforcement on)."""
    value = parse_amount(monthly_budget, field="monthly_budget", minimum=MIN_BUDGET)
    _require_member(session, account_owner_id, member_id)
    before = [{"monthly_budget": r.monthly_budget, "enforce": r.enforce}
              for r in repo.budgets(session, member_id=member_id)]
    repo.upsert_budget(session, member_id, account_owner_id, value, enforce, set_by)
    audit.record(session, "budgets.set", account_id=account_owner_id,
                 target=f"user:{member_id}", before=before[0] if before else None,
                 after={"monthly_budget": value, "enforce": enforce})
    day = today or today_utc()
    evaluate(session, hooks, day, member_id=member_id)
    [out] = _out(session, repo.budgets(session, member_id=member_id), month_of(day))
    return out


def remove_budget(
    session: Session, account_owner_id: str, member_id: str, *, hooks: AccountHooks
) -> None:
    """Remove a member's budget (a member without one: nothing to do); a member it
    stopped is reactivated. Someone who is not a member of the account: NotFound."""
    _require_member(session, account_owner_id, member_id)
    rows = repo.budgets(session, member_id=member_id, lock=True)
    if not rows:
        return
    if rows[0].stopped_month is not None:
        hooks.member_budget_restored(session, member_id, rows[0].account_owner_id)
    repo.delete_budgets(session, [member_id])
    audit.record(session, "budgets.removed", account_id=account_owner_id,
                 target=f"user:{member_id}", after=None,
                 before={"monthly_budget": rows[0].monthly_budget, "enforce": rows[0].enforce})


def budgets_of(
    session: Session, account_owner_id: str, today: date | None = None
) -> list[MemberBudgetOut]:
    """The account's budgets of current members, with what each spent this month."""
    rows = [r for r in repo.budgets(session, account_owner_id=account_owner_id)
            if r.still_member]
    return _out(session, rows, month_of(today or today_utc()))


def evaluate(
    session: Session,
    hooks: AccountHooks,
    today: date,
    *,
    account_owner_id: str | None = None,
    member_id: str | None = None,
    account_owner_ids: Sequence[str] | None = None,
) -> BudgetOutcome:
    """Bring budgets (all, or an account's, or a member's, or those of
    ``account_owner_ids``) up to their month's spend:
    publish the notices due (once each), stop the members over an enforced budget and
    reactivate those no longer over it, through the hooks, in this transaction. Budgets
    of people who left the account are removed (a member they stopped is reactivated)."""
    month = month_of(today)
    rows = repo.budgets(session, account_owner_id=account_owner_id, member_id=member_id,
                        lock=True, account_owner_ids=account_owner_ids)
    if not rows:
        return BudgetOutcome()
    spent = _spend(session, [r.member_id for r in rows], month)
    events: list[AccountEvent] = []
    noticed: list[tuple[str, date, Decimal, int]] = []
    stop: list[BudgetRow] = []
    restore: list[BudgetRow] = []
    carried: list[str] = []  # stopped last month and still over this month's budget
    for r in rows:
        s = spent[r.member_id]
        if r.still_member:
            due = budget_notices_due(
                budget_thresholds_reached(s, r.monthly_budget), r.monthly_budget, month,
                (r.noticed_month, r.noticed_budget, r.noticed_percent))
            events += [_reached(r, month, p, s) for p in due]
            if due:
                noticed.append((r.member_id, month, r.monthly_budget, max(due)))
        stops = budget_stops(s, r.monthly_budget, r.enforce, r.still_member)
        if stops and r.stopped_month is None:
            stop.append(r)
        elif stops and r.stopped_month != month:
            carried.append(r.member_id)
        elif not stops and r.stopped_month is not None:
            restore.append(r)
    notices.publish_many(session, events)
    repo.set_noticed(session, noticed)
    repo.set_stopped(session, [r.member_id for r in stop] + carried, month)
    repo.set_stopped(session, [r.member_id for r in restore], None)
    for r in stop:
        hooks.member_budget_exceeded(session, r.member_id, r.account_owner_id)
        audit.record(session, "budgets.member_stopped", account_id=r.account_owner_id,
                     target=f"user:{r.member_id}", before={"stopped": False},
                     after={"stopped": True, "spend": spent[r.member_id],
                            "monthly_budget": r.monthly_budget})
    for r in restore:
        hooks.member_budget_restored(session, r.member_id, r.account_owner_id)
        audit.record(session, "budgets.member_restored", account_id=r.account_owner_id,
                     target=f"user:{r.member_id}", before={"stopped": True},
                     after={"stopped": False, "spend": spent[r.member_id],
                            "monthly_budget": r.monthly_budget})
    repo.delete_budgets(session, [r.member_id for r in rows if not r.still_member])
    if stop or restore:
        log.info("member budgets applied", stopped=len(stop), restored=len(restore))
    return BudgetOutcome(len(events), tuple(r.member_id for r in stop),
                         tuple(r.member_id for r in restore))


def _reached(r: BudgetRow, month: date, percent: int, spend: Decimal) -> AccountEvent:
    """The event of a member's spend reaching ``percent`` of their budget this month, told
    to the owner and to the member; its key names the member, month, threshold and
    amount, so two evaluations that find it publish it once."""
    return AccountEvent(
        "budget_reached", r.account_owner_id,
        f"budget_reached:{r.member_id}:{month.isoformat()}:{percent}:{r.monthly_budget}",
        {"member_id": r.member_id, "month": month, "percent": percent,
         "budget": r.monthly_budget, "spend": spend, "enforce": r.enforce,
         "recipients": ["owner", "member"]},
    )


def _spend(session: Session, members: list[str], month: date) -> defaultdict[str, Decimal]:
    """Each member's priced share of the month: per day, their units at the day's price
    rounded to the cent (``money.cost_of``, as ``billing.service.usage_report`` prices a
    member's share), summed."""
    spent: defaultdict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for member, units, price in repo.budget_usage(session, members, month, next_month(month)):
        spent[member] += cost_of(units, price)
    return spent


def _out(session: Session, rows: list[BudgetRow], month: date) -> list[MemberBudgetOut]:
    spent = _spend(session, [r.member_id for r in rows], month) if rows else defaultdict(Decimal)
    return [
        MemberBudgetOut(
            member_id=r.member_id, email=r.email or "", name=r.name,
            monthly_budget=r.monthly_budget, enforce=r.enforce, month=month,
            spent=spent[r.member_id],
            percent=int(spent[r.member_id] * 100 // r.monthly_budget),
            stopped=r.stopped_month is not None,
        )
        for r in rows
    ]


def _require_member(session: Session, account_owner_id: str, member_id: str) -> None:
    """A budget is for a team member of this account (not its owner): anyone else is
    answered as unknown, exactly like a member of another account."""
    try:
        user = accounts.get_user(session, member_id)
    except NotFound:
        user = None
    if user is None or user.account_owner_id != account_owner_id:
        raise NotFound(f"no member {member_id!r} in this account")
