"""hopsplane billing: charge usage to the ledger, prices, notices."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from hopsplane.billing import service
from hopsplane.billing.rules import today_utc
from hopsplane.billing.run import run_billing
from hopsplane.cli import lookup
from hopsplane.cli.common import (
    console,
    database,
    err_console,
    friendly,
    load_settings,
    progress_console,
    transaction,
)
from hopsplane.composition.hooks import build_account_hooks
from hopsplane.errors import Invalid

app = typer.Typer(
    help="Charge metered usage to the credits ledger, set per-account prices, and send "
    "low-balance notices.",
    no_args_is_help=True,
)


def _day(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{what} must be a date like 2026-11-24, got {value!r}") from None


@app.command()
@friendly
def run(
    through: Annotated[
        str | None,
        typer.Option(help="Charge usage dated up to this UTC day (YYYY-MM-DD). Default: today."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=5000, help="Accounts per transaction (HOPSPLANE_BILLING_BATCH_SIZE)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Batches charged side by side.")
    ] = 2,
) -> None:
    """Post a usage debit for every part of usage_tracking.total_cost not charged yet.

    Late usage for a charged day is charged as the difference; a repeat with nothing new
    posts nothing. Safe to run every few minutes, and concurrently. Exit 1 when some
    accounts failed (they are listed; the others were charged)."""
    settings = load_settings()
    day = _day(through, "--through") or today_utc()
    with database(settings) as db, progress_console().status("billing...") as status:
        report = run_billing(
            db, day,
            hooks=build_account_hooks(settings),
            thresholds=settings.thresholds,
            batch_size=batch_size if batch_size is not None else settings.billing_batch_size,
            workers=workers,
            slice_days=settings.billing_slice_days,
            progress=lambda r: status.update(
                f"billing... {r.accounts} accounts, {r.postings} debits, {r.amount}"),
        )
    console.print(
        f"billed through {report.through}: {report.postings} debits totalling "
        f"{report.amount} over {report.accounts} accounts; {report.notices} notices "
        f"queued (the worker sends them), {report.suspended} accounts suspended"
    )
    if report.failures:
        err_console.print(f"[red]{len(report.failures)} account(s) failed:[/red]")
        for f in report.failures:
            err_console.print(f"  {f.account_owner_id}: {f.error}")
        raise typer.Exit(1)



@app.command("set-price", context_settings={"ignore_unknown_options": True})
@friendly
def set_price(
    account: lookup.AccountArg,
    unit_price: Annotated[str, typer.Argument(
        help="Dollars per compute unit, e.g. 0.00008; zero or more (a leading minus, as in "
        "-0.1, is read as the price and refused).")],
    effective_from: Annotated[
        str, typer.Option("--from", help="First UTC day the price applies to (YYYY-MM-DD).")
    ],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (required).")],
) -> None:
    """Set an account's unit price from a day on (default price: 0.0001). Days already
    charged cannot be repriced."""
    day = _day(effective_from, "--from")
    assert day is not None
    with transaction(load_settings()) as s:
        owner = lookup.account(s, account, for_change=True)
        o = service.set_price_override(s, owner.id, day, unit_price, reason=reason,
                                       set_by="cli")
    console.print(f"{lookup.account_label(owner)}: {o.unit_price} USD per compute unit from "
                  f"{o.effective_from}", highlight=False)
