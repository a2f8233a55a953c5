"""hopsplane credits: read and check the credits ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from hopsplane.cli.common import console, err_console, friendly, load_settings, transaction
from hopsplane.clusters.hooks import build_account_hooks
from hopsplane.credits import service
from hopsplane.credits.origins import OperatorGrant, OperatorRefund
from hopsplane.credits.rules import parse_expiry_date, validate_expiry
from hopsplane.credits.schemas import PostResult
from hopsplane.errors import Invalid

app = typer.Typer(
    help="Inspect, verify and correct the credits ledger (balances are kept per account "
    "owner). Corrections are new entries: grant adds credit, refund reverses a purchase.",
    no_args_is_help=True,
)

_KEY_HELP = (
    "Idempotency key: running the command again with the same key changes nothing and "
    "prints the original entry. It lives in the operators' own namespace (the ledger "
    "stores it as operator:grant:<key> or operator:refund:<key>), so it can never match "
    "a key of a Stripe payment or a billing run. Default: a new random key."
)


def _print_posted(result: PostResult) -> None:
    e = result.entry
    verb = "posted" if result.created else "already posted (same key), unchanged"
    expires = f", expires {e.expires_at.isoformat()}" if e.expires_at else ""
    console.print(
        f"{verb}: #{e.seq} {e.type.value} {e.amount} on {e.account_owner_id}, "
        f"balance {e.balance}{expires} (entry {e.id})"
    )
    for event in result.events:
        console.print(f"  account {event.kind.replace('_', ' ')}")


@app.command()
@friendly
def grant(
    account: Annotated[str, typer.Argument(help="Account owner's user id.")],
    amount: Annotated[str, typer.Argument(help="Dollars to add, e.g. 25.00.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (required; kept in the entry).")
    ],
    key: Annotated[str | None, typer.Option(help=_KEY_HELP)] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Promotional credit: what is left of it expires at the start of "
        "this day (UTC), YYYY-MM-DD. Usage draws it first; the owner is told 7 days before. "
        "Without it the credit never expires.")] = None,
) -> None:
    """Give an account free credit (goodwill, trial, correction). A grant that brings a
    suspended account above zero lifts the suspension."""
    settings = load_settings()
    try:
        expires_at = parse_expiry_date(expires) if expires is not None else None
        if expires_at is not None:
            validate_expiry(expires_at, datetime.now(UTC))
    except Invalid as exc:  # a usage error: exit 2, nothing posted
        raise typer.BadParameter(exc.message, param_hint="--expires") from None
    with transaction(settings) as session:
        result = service.grant(
            session, account, amount, reason=reason,
            origin=OperatorGrant(key or str(uuid.uuid4())), expires_at=expires_at,
            granted_by="cli", hooks=build_account_hooks(settings), thresholds=settings.thresholds,
        )
    _print_posted(result)


@app.command()
@friendly
def refund(
    account: Annotated[str, typer.Argument(help="Account owner's user id.")],
    purchase: Annotated[str, typer.Argument(help="Id of the purchase entry to refund.")],
    amount: Annotated[str, typer.Argument(help="Dollars to give back, e.g. 10.00.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (required; kept in the entry).")
    ],
    key: Annotated[str | None, typer.Option(help=_KEY_HELP)] = None,
) -> None:
    """Reverse (part of) a purchase. Refused when it exceeds what is left of the purchase
    or would take the balance below zero. Money is returned through Stripe separately."""
    try:
        purchase_id = uuid.UUID(purchase)
    except ValueError:
        raise Invalid(f"purchase must be an entry id (a UUID), got {purchase!r}") from None
    settings = load_settings()
    with transaction(settings) as session:
        result = service.refund(
            session, account, purchase_id, amount, reason=reason,
            origin=OperatorRefund(key or str(uuid.uuid4())),
            refunded_by="cli", hooks=build_account_hooks(settings), thresholds=settings.thresholds,
        )
    _print_posted(result)


@app.command()
@friendly
def balance(account: Annotated[str, typer.Argument(help="Account owner's user id.")]) -> None:
    """Print an account's current balance."""
    with transaction(load_settings()) as session:
        console.print(f"{account}: {service.balance(session, account)}")


@app.command()
@friendly
def history(
    account: Annotated[str, typer.Argument(help="Account owner's user id.")],
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 20,
    before: Annotated[int | None, typer.Option(help="Only entries before this sequence.")] = None,
) -> None:
    """List an account's ledger entries, newest first, with the running balance."""
    with transaction(load_settings()) as session:
        entries = service.history(session, account, limit=limit, before_seq=before)
    table = Table("seq", "when (UTC)", "type", "amount", "balance", "description")
    for e in entries:
        table.add_row(
            str(e.seq), e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.type.value,
            str(e.amount), str(e.balance), e.description or "",
        )
    console.print(table)


@app.command()
@friendly
def verify(
    account: Annotated[
        str | None, typer.Option(help="Check only this account (default: every account).")
    ] = None,
) -> None:
    """Check every running-balance chain; exit 1 and list the breaks if any is broken."""
    with transaction(load_settings()) as session:
        report = service.verify(session, account)
    if report.ok:
        console.print(
            f"[green]ok[/green]: {report.entries} entries in {report.accounts} accounts, "
            "every chain intact"
        )
        return
    err_console.print(f"[red]{len(report.breaks)} break(s)[/red] in {report.accounts} accounts:")
    for b in report.breaks:
        err_console.print(f"  {b.account_owner_id} #{b.seq}: {b.problem}")
    raise typer.Exit(1)
