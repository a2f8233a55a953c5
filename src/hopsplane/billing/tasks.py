"""The billing domain's jobs: the periodic billing run, and the billing of the accounts a
usage collection just changed (the same run, limited to those accounts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from hopsplane.billing import service
from hopsplane.billing.run import run_billing
from hopsplane.errors import Unavailable
from hopsplane.worker.schemas import JobContext, Task
from hopsplane.worker.service import enqueue_unless_queued

log = structlog.get_logger(__name__)

BILLING_EVERY = timedelta(minutes=15)
BILLING_TASK = "billing.run"
BILL_ACCOUNTS_TASK = "billing.bill_accounts"


def run_billing_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Charge every uncharged usage through today (UTC). Batches commit on their own
    transactions; a failed account is logged and retried by the next slot. Needs the
    worker's ``settings``, ``database`` and ``hooks`` services (the notices it causes are
    jobs of their own)."""
    _run(ctx, ctx.clock().astimezone(UTC).date(), None)


def enqueue_account_billing(session: Session, accounts: list[str], through: date) -> None:
    """Queue the charge of these accounts' usage up to ``through``, in the caller's
    transaction (a usage collection's: committed with the usage it folded, so usage that
    changed is always followed by its billing). Unless the same job is already waiting."""
    if accounts:
        enqueue_unless_queued(
            session, BILL_ACCOUNTS_TASK,
            {"accounts": sorted(set(accounts)), "through": through.isoformat()},
        )


def bill_accounts_job(session: Session, args: dict[str, Any], ctx: JobContext) -> None:
    """Charge the job's accounts through its day: :func:`run_billing` limited to them.
    Running it again charges nothing twice (a day is charged by the difference between its
    cost and what was charged). A row that a usage fold held at that moment was skipped
    (billing never waits on a row lock): the job is then retried within seconds, rather
    than leaving that usage to the next periodic run. An account that failed is reported
    by the run and charged by the next one (retrying would fail the same way)."""
    accounts = [str(a) for a in args["accounts"]]
    through = date.fromisoformat(str(args["through"]))
    report = _run(ctx, through, accounts)
    failed = {f.account_owner_id for f in report.failures}
    with ctx.services.database.transaction() as s:
        left = [a for a in service.unbilled_among(s, accounts, through) if a not in failed]
    if left:
        raise Unavailable(f"{len(left)} account(s) had usage rows held by a fold; retrying")


def _run(ctx: JobContext, through: date, accounts: Sequence[str] | None) -> Any:
    settings = ctx.services.settings
    return run_billing(
        ctx.services.database,
        through,
        hooks=ctx.services.hooks,
        thresholds=settings.thresholds,
        batch_size=settings.billing_batch_size,
        workers=1,
        accounts=accounts,
        slice_days=settings.billing_slice_days,
    )


TASKS: tuple[Task, ...] = (
    Task(BILLING_TASK, run_billing_job, every=BILLING_EVERY, slot="billing-run"),
    Task(BILL_ACCOUNTS_TASK, bill_accounts_job),
)
"""Every 15 minutes the whole run (idempotent: charges only what is new, e.g. usage that
cluster agents sent); at once, the accounts a collection changed."""
