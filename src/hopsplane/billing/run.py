"""The billing run: every account with uncharged usage, in batches, one transaction each.

This is a job (an edge): it opens its own transactions. It is safe to run every few
minutes and concurrently with itself, with purchases and with grants: a batch holds its
accounts' ledger locks and its usage rows' locks until it commits, and every debit has a
deterministic idempotency key. A batch that fails is retried account by account, so one
account's failure is reported and the others are still charged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from decimal import Decimal

import structlog

from hopsplane.billing import budgets, service
from hopsplane.billing import repository as repo
from hopsplane.billing.schemas import AccountFailure, BatchOutcome, RunReport
from hopsplane.credits.rules import DEFAULT_THRESHOLDS
from hopsplane.db.engine import Database
from hopsplane.errors import AppError
from hopsplane.hooks import AccountHooks

log = structlog.get_logger(__name__)


def run_billing(
    db: Database,
    through: date,
    *,
    hooks: AccountHooks,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
    batch_size: int = 1000,
    workers: int = 2,
    progress: Callable[[RunReport], None] | None = None,
    accounts: Sequence[str] | None = None,
    slice_days: int = service.DEFAULT_SLICE_DAYS,
) -> RunReport:
    """Charge all accounts with uncharged usage up to ``through`` (or only ``accounts``:
    the job a collection queues for the accounts whose usage it changed; the same path,
    so there is one way to bill).

    Batches of ``batch_size`` accounts (in id order) are charged by ``workers`` threads,
    each batch in its own transaction; the notices a batch causes are queued jobs,
    committed with it (the worker sends them). An account's
    backlog is charged ``slice_days`` days per transaction, oldest first, slice after slice
    until it is done: a transaction stays bounded however many days an account has, so one
    account can neither time out nor fail the run. ``hooks`` are called from the worker
    threads."""
    report = RunReport(through=through)
    among = None if accounts is None else sorted(set(accounts))
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="billing") as pool:
        inflight: deque[Future[RunReport]] = deque()
        for batch in _batches(db, through, batch_size, among):
            inflight.append(pool.submit(
                _bill_batch, db, batch, through, hooks, thresholds, slice_days))
            while len(inflight) >= 2 * max(1, workers):
                _merge(report, inflight.popleft().result(), progress)
        while inflight:
            _merge(report, inflight.popleft().result(), progress)
    _budgets(db, through, hooks, report, among)
    log.info("billing run", through=str(through), accounts=report.accounts,
             postings=report.postings, amount=str(report.amount),
             failures=len(report.failures))
    return report


def _batches(
    db: Database, through: date, batch_size: int, among: list[str] | None
) -> Iterator[list[str]]:
    if among == []:
        return
    after: str | None = None
    while True:
        with db.transaction() as s:
            accounts = repo.accounts_to_bill(s, through, after=after, limit=batch_size,
                                             among=among)
        if not accounts:
            return
        after = accounts[-1]
        yield accounts


def _bill_batch(
    db: Database,
    accounts: list[str],
    through: date,
    hooks: AccountHooks,
    thresholds: tuple[Decimal, ...],
    slice_days: int = service.DEFAULT_SLICE_DAYS,
) -> RunReport:
    part = RunReport(through=through)
    more: tuple[str, ...] = ()
    try:
        with db.transaction() as s:
            outcome = service.bill_batch(
                s, accounts, through, hooks=hooks, thresholds=thresholds,
                slice_days=slice_days)
        _add(part, outcome)
        more = outcome.more
    except Exception:  # isolate the failing account(s); the rest is charged below
        log.warning("billing batch failed; retrying its accounts one by one",
                    first=accounts[0], size=len(accounts))
        for account in accounts:
            _bill_one(db, account, through, hooks, thresholds, part, slice_days)
    for account in more:  # the rest of a long backlog: slice after slice, each committed
        _bill_one(db, account, through, hooks, thresholds, part, slice_days, counted=True)
    return part


def _merge(
    report: RunReport, part: RunReport, progress: Callable[[RunReport], None] | None
) -> None:
    _add(report, BatchOutcome(part.accounts, part.rows, part.postings, part.amount))
    report.suspended += part.suspended
    report.failures.extend(part.failures)
    report.notices += part.notices
    if progress is not None:
        progress(report)


def _bill_one(
    db: Database,
    account_id: str,
    through: date,
    hooks: AccountHooks,
    thresholds: tuple[Decimal, ...],
    report: RunReport,
    slice_days: int = service.DEFAULT_SLICE_DAYS,
    *,
    counted: bool = False,
) -> None:
    """Charge one account's backlog, ``slice_days`` days per transaction, until it is done
    (each slice marks its days charged, so every slice makes progress). ``counted``: the
    account is already in the report's count. A failing slice is reported and ends this
    account's charging in this run; what the earlier slices charged stays committed."""
    try:
        while True:
            with db.transaction() as s:
                outcome = service.bill_batch(
                    s, [account_id], through, hooks=hooks, thresholds=thresholds,
                    slice_days=slice_days)
            if counted:
                outcome = replace(outcome, accounts=0)
            counted = True
            _add(report, outcome)
            if not outcome.more:
                return
    except AppError as exc:
        report.failures.append(AccountFailure(account_id, f"{exc.name}: {exc.message}"))
    except Exception as exc:  # a bug or a database error: report it, bill the others
        log.exception("billing failed for an account", account=account_id)
        report.failures.append(AccountFailure(account_id, f"{type(exc).__name__}: {exc}"))


def _add(report: RunReport, outcome: BatchOutcome) -> None:
    report.suspended += outcome.suspended
    report.accounts += outcome.accounts
    report.rows += outcome.rows
    report.postings += outcome.postings
    report.amount += outcome.amount
    report.notices += outcome.notices


def _budgets(
    db: Database, through: date, hooks: AccountHooks, report: RunReport,
    among: list[str] | None = None,
) -> None:
    """After the run: member budgets (of the accounts billed, or all) against the month of
    ``through`` (stops and reactivations through the hooks, notices queued, in one
    transaction)."""
    try:
        with db.transaction() as s:
            outcome = budgets.evaluate(s, hooks, through, account_owner_ids=among)
        report.budget_stops += len(outcome.stopped)
        report.budget_restores += len(outcome.restored)
        report.notices += outcome.notices
    except Exception:  # the charges are committed; the next run evaluates again
        log.exception("member budgets not evaluated")
        report.failures.append(AccountFailure("*", "member budgets not evaluated"))
