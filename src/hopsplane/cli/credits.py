"""hopsplane credits: read and check the credits ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from hopsplane.cli import lookup
from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    err_console,
    friendly,
    load_settings,
    print_list,
    transaction,
)
from hopsplane.composition.hooks import build_account_hooks
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


# A value that starts with a minus is read as the value, not as an unknown option, so that
# `credits grant ACCOUNT -5 ...` gets the ledger's own answer ("must be positive") rather
# than click's "No such option: -5".
_NEGATIVE_AS_VALUE = {"ignore_unknown_options": True}

_AMOUNT_RULE = (
    " Positive: a leading minus (-5, or -- -5) is read as the amount and refused; nothing "
    "takes credit away but usage and refunds."
)


@app.command(context_settings=_NEGATIVE_AS_VALUE)
@friendly
def grant(
    account: lookup.AccountArg,
    amount: Annotated[str, typer.Argument(help="Dollars to add, e.g. 25.00." + _AMOUNT_RULE)],
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
        owner = lookup.account(session, account, for_change=True)
        result = service.grant(
            session, owner.id, amount, reason=reason,
            origin=OperatorGrant(key or str(uuid.uuid4())), expires_at=expires_at,
            granted_by="cli", hooks=build_account_hooks(settings), thresholds=settings.thresholds,
        )
    _print_posted(result)


@app.command(context_settings=_NEGATIVE_AS_VALUE)
@friendly
def refund(
    account: lookup.AccountArg,
    purchase: Annotated[str, typer.Argument(
        help="Id of the purchase entry to refund (the id column of `credits history`).")],
    amount: Annotated[
        str, typer.Argument(help="Dollars to give back, e.g. 10.00." + _AMOUNT_RULE)
    ],
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
        raise Invalid(f"purchase must be an entry id (a UUID, the id column of `hopsplane "
                      f"credits history`), got {purchase!r}") from None
    settings = load_settings()
    with transaction(settings) as session:
        owner = lookup.account(session, account, for_change=True)
        result = service.refund(
            session, owner.id, purchase_id, amount, reason=reason,
            origin=OperatorRefund(key or str(uuid.uuid4())),
            refunded_by="cli", hooks=build_account_hooks(settings), thresholds=settings.thresholds,
        )
    _print_posted(result)


@app.command()
@friendly
def balance(account: lookup.AccountArg) -> None:
    """Print an account's current balance, in dollars."""
    with transaction(load_settings()) as session:
        owner = lookup.account(session, account, for_change=False)
        amount = service.balance(session, owner.id)
    console.print(f"{lookup.account_label(owner)}: {amount} USD", highlight=False)


_HISTORY = (
    Col("seq", lambda e: e.seq, justify="right"),
    Col("id", lambda e: e.id, whole=True),  # what `credits refund` takes as PURCHASE_ID
    Col("when (UTC)", lambda e: e.created_at.strftime("%Y-%m-%d %H:%M:%S")),
    Col("type", lambda e: e.type.value),
    Col("amount", lambda e: e.amount, justify="right"),
    Col("balance", lambda e: e.balance, justify="right"),
    Col("description", lambda e: e.description),
)


@app.command()
@friendly
def history(
    account: lookup.AccountArg,
    limit: Annotated[int, typer.Option(
        min=1, max=service.MAX_PAGE, help="How many entries, newest first.")] = 20,
    before: Annotated[int | None, typer.Option(help="Only entries before this sequence.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List an account's ledger entries, newest first, with the running balance (the id
    column is what `credits refund` takes)."""
    with transaction(load_settings()) as session:
        owner = lookup.account(session, account, for_change=False)
        entries = service.history(session, owner.id, limit=limit, before_seq=before)
    print_list(entries, _HISTORY, as_json=as_json)


_CATCH_UP_BATCH = 500


@app.command()
@friendly
def verify(
    account: Annotated[str | None, typer.Option(
        help="Check only this account: its owner's email or user id (default: every "
        "account).")] = None,
) -> None:
    """Check every running-balance chain and the draws; exit 1 and list the breaks if any
    is broken."""
    settings = load_settings()
    if account is None:
        # every account's draws up to its head first, a transaction per batch of accounts
        with transaction(settings) as session:
            behind = service.accounts_behind(session)
        for start in range(0, len(behind), _CATCH_UP_BATCH):
            with transaction(settings) as session:
                service.catch_up(session, behind[start:start + _CATCH_UP_BATCH])
    with transaction(settings) as session:
        owner = lookup.account(session, account, for_change=False) if account else None
        report = service.verify(session, owner.id if owner else None)
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
