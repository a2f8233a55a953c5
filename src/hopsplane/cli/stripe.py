"""hopsplane stripe: compare Stripe's payments and refunds with the credits ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    err_console,
    fail,
    friendly,
    load_settings,
    print_json,
    print_list,
    transaction,
)
from hopsplane.composition.hooks import build_account_hooks
from hopsplane.credits.schemas import BalancePolicy
from hopsplane.integrations.stripe import build_stripe
from hopsplane.payments.receipts import backfill
from hopsplane.payments.reconcile import reconcile as run_reconcile

app = typer.Typer(
    help="Stripe payments: reconcile what Stripe was paid and refunded with the credits "
    "ledger. Uses HOPSPLANE_STRIPE_SECRET_KEY (its mode, test or live, decides which "
    "payments are compared).",
    no_args_is_help=True,
)


_DISCREPANCIES = (
    Col("payment intent", lambda d: d.payment_intent_id, whole=True),
    Col("account", lambda d: d.account_owner_id or "-", whole=True),
    Col("what", lambda d: d.kind),
    Col("amount", lambda d: d.amount, justify="right"),
    Col("detail", lambda d: d.detail),
    Col("fixed", lambda d: "yes" if d.fixed else (f"no: {d.fix_error}" if d.fix_error else "no")),
)


@app.command()
@friendly
def reconcile(
    since: Annotated[
        datetime | None,
        typer.Option(help="Only payments created on or after this date (UTC), e.g. "
                     "2026-11-01. Default: every payment.", formats=["%Y-%m-%d",
                     "%Y-%m-%dT%H:%M:%S"]),
    ] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Post the missing purchases, refunds and disputes.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List succeeded top-up payments, refunds and disputes (withdrawn, and won) that Stripe
    has and the ledger lacks (and,
    with --fix, post them through the same idempotent path as the webhook). Exits 1 while
    anything is left unfixed. Also fetches the Stripe receipt links of purchases that have
    none (purchases from before receipts were kept, or credited while Stripe could not be
    read): that writes only links, never credit."""
    settings = load_settings()
    gateway = build_stripe(settings)
    if gateway is None:
        fail("Stripe is not configured: set HOPSPLANE_STRIPE_SECRET_KEY")
        return
    start = since.replace(tzinfo=UTC) if since is not None else None
    if start is not None and start.date() > date.today():
        fail(f"--since {start.date()} is in the future")
    with transaction(settings) as session:
        policy = BalancePolicy(build_account_hooks(settings), settings.thresholds)
        report = run_reconcile(session, gateway, since=start, fix=fix, policy=policy)
    with transaction(settings) as session:  # receipts only: the fixes above stay committed
        receipts = backfill(session, gateway)
    if as_json:
        print_json({"mode": gateway.mode, "charges_seen": report.charges_seen,
                    "payments_checked": report.payments_checked,
                    "disputes_seen": report.disputes_seen,
                    "receipts_filled": receipts.filled, "receipts_missing": receipts.missing,
                    "discrepancies": report.discrepancies})
    else:
        console.print(
            f"{report.charges_seen} charges read from Stripe ({gateway.mode} mode), "
            f"{report.payments_checked} top-up payments compared with the ledger, "
            f"{report.disputes_seen} disputes read"
        )
        console.print(
            f"receipts: {receipts.filled} link(s) fetched for purchases that had none"
            + (f", {receipts.missing} purchase(s) without a receipt in Stripe"
               if receipts.missing else "")
        )
        if report.discrepancies:
            print_list(report.discrepancies, _DISCREPANCIES, as_json=False)
        else:
            console.print("[green]ok[/green]: the ledger has every payment, refund and dispute")
    if not report.ok:
        left = sum(1 for d in report.discrepancies if not d.fixed)
        hint = "" if fix else " (run again with --fix to post what is missing)"
        err_console.print(f"[red]{left} discrepancy(ies) left[/red]{hint}")
        raise typer.Exit(1)
