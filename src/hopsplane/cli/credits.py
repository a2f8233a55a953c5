"""hopsplane credits: read and check the credits ledger."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hopsplane.cli.common import console, err_console, friendly, load_settings, open_database
from hopsplane.credits import service

app = typer.Typer(
    help="Inspect and verify the credits ledger (balances are kept per account owner).",
    no_args_is_help=True,
)


@app.command()
@friendly
def balance(account: Annotated[str, typer.Argument(help="Account owner's user id.")]) -> None:
    """Print an account's current balance."""
    db = open_database(load_settings())
    with db.transaction() as session:
        console.print(f"{account}: {service.balance(session, account)}")


@app.command()
@friendly
def history(
    account: Annotated[str, typer.Argument(help="Account owner's user id.")],
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 20,
    before: Annotated[int | None, typer.Option(help="Only entries before this sequence.")] = None,
) -> None:
    """List an account's ledger entries, newest first, with the running balance."""
    db = open_database(load_settings())
    with db.transaction() as session:
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
    db = open_database(load_settings())
    with db.transaction() as session:
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
