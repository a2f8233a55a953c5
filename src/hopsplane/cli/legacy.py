"""hopsplane legacy: the one-off move of the 17-table legacy database onto the new schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    encryption_box_keys,
    err_console,
    fail,
    friendly,
    load_settings,
    print_json,
    print_list,
    progress_console,
)
from hopsplane.crypto import SecretBox
from hopsplane.legacy import generate as legacy_generate
from hopsplane.legacy import service
from hopsplane.legacy.ddl import FINANCIAL_EXPECTED_EMPTY

app = typer.Typer(
    help="The cleanup of the legacy 17-table database: plan it, migrate it (backup, new "
    "schema, data move, verification, drop, all in one transaction), verify it, restore it. "
    "Run `plan` first; run `migrate` in a maintenance window with the application stopped.",
    no_args_is_help=True,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL of the database to work on (default: HOPSPLANE_DATABASE_URL).",
        show_default=False,
    ),
]
BackupDir = Annotated[
    Path,
    typer.Option("--backup-dir", help="Folder of the backup (one CSV per table + "
                 "manifest.json).", file_okay=False),
]


def _url(database_url: str | None) -> str:
    if database_url:
        return database_url
    settings = load_settings()
    if not settings.database_url:
        fail("give --database-url (or set HOPSPLANE_DATABASE_URL): the legacy cleanup never "
             "runs against the embedded database by default", code=2)
    return str(settings.database_url)


def _planned(report: service.PlanReport) -> tuple[Col, ...]:
    return (
        Col("table", lambda a: a[0], whole=True),
        Col("rows", lambda a: f"{report.counts.get(a[0], 0):,}", justify="right"),
        Col("action", lambda a: a[1]),
    )


def _print_plan(report: service.PlanReport) -> None:
    if report.other_connections:
        err_console.print(f"[yellow]warning:[/yellow] {len(report.other_connections)} other "
                          "connection(s) to this database (stop the application first):")
        for c in report.other_connections[:20]:
            err_console.print(f"  {c}")
    state = report.state
    if state.kind == "migrated":
        console.print("the database is already on the new schema: nothing to migrate")
        return
    if state.kind != "legacy":
        console.print(f"[red]not the legacy schema[/red] ({state.kind}):")
        for d in state.differences:
            console.print(f"  - {d}")
        return
    print_list(list(report.actions.items()), _planned(report), as_json=False, title="legacy tables")
    if not report.anomalies:
        console.print("no anomalies")
    for a in report.anomalies:
        colour = "red" if a.severity == "blocking" else "yellow"
        examples = f" e.g. {', '.join(a.examples)}" if a.examples else ""
        console.print(f"[{colour}]{a.severity}[/{colour}] {a.code} in {a.table}: {a.count:,} — "
                      f"{a.detail}.{examples}")
    if report.can_migrate:
        console.print("[green]migrate would succeed[/green]")
    else:
        console.print("[red]migrate would refuse[/red] (see the blocking anomalies)")


@app.command()
@friendly
def plan(
    database_url: DatabaseUrl = None,
    allow_drop_nonempty: Annotated[
        list[str] | None,
        typer.Option("--allow-drop-nonempty", help="As for migrate: a financial table "
                     f"({', '.join(FINANCIAL_EXPECTED_EMPTY)}) that may be retired with rows."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read-only: recognise the legacy schema (or say what differs), print every table's row
    count and fate, and every anomaly. Exit 0 when migrate would succeed, 1 otherwise."""
    allowed = _allowed(allow_drop_nonempty)
    with service.connect(_url(database_url)) as conn, conn.begin() as tx:
        report = service.plan(conn, allowed)
        tx.rollback()
    if as_json:
        print_json({
            "state": report.state, "can_migrate": report.can_migrate,
            "tables": [{"table": name, "rows": report.counts.get(name, 0), "action": what}
                       for name, what in report.actions.items()],
            "anomalies": report.anomalies, "other_connections": report.other_connections,
        })
    else:
        _print_plan(report)
    if not report.can_migrate:
        raise typer.Exit(1)


def _allowed(values: list[str] | None) -> frozenset[str]:
    allowed = frozenset(values or ())
    unknown = allowed - set(FINANCIAL_EXPECTED_EMPTY)
    if unknown:
        fail(f"--allow-drop-nonempty takes {', '.join(FINANCIAL_EXPECTED_EMPTY)}; "
             f"got {', '.join(sorted(unknown))}", code=2)
    return allowed


@contextmanager
def _progress() -> Iterator[service.StepHook]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=progress_console(), transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def hook(name: str, phase: Literal["start", "done"]) -> None:
            if phase == "start":
                tasks[name] = progress.add_task(name, total=1)
            else:
                progress.update(tasks[name], completed=1, description=f"{name} [green]ok[/green]")

        yield hook


@app.command()
@friendly
def migrate(
    backup_dir: BackupDir,
    database_url: DatabaseUrl = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do everything (backup "
                       "included) inside a transaction that is rolled back.")] = False,
    keep_legacy: Annotated[bool, typer.Option("--keep-legacy", help="Move the twelve "
                           "retired tables into the schema legacy_archive instead of dropping "
                           "them.")] = False,
    allow_drop_nonempty: Annotated[
        list[str] | None,
        typer.Option("--allow-drop-nonempty", help="Retire this financial table even though "
                     "it holds rows (repeat per table; it is in the backup either way)."),
    ] = None,
    lock_timeout: Annotated[str, typer.Option(help="Give up when a table lock is not "
                            "granted within this time (PostgreSQL interval).")] = "10s",
) -> None:
    """Back up all 17 tables (COPY + manifest with SHA-256), create the new schema, move the
    data, verify it, then drop the legacy tables: in ONE transaction, so an interruption
    leaves the legacy database untouched. Re-running after success says there is nothing to
    do."""
    allowed = _allowed(allow_drop_nonempty)
    settings = load_settings()
    box = SecretBox(encryption_box_keys(settings))
    started = time.perf_counter()
    with service.connect(_url(database_url)) as conn:
        others = service.other_connections_of(conn)
        if others:
            err_console.print(f"[yellow]warning:[/yellow] {len(others)} other connection(s) "
                              "to this database; they will block the locks or be blocked:")
            for c in others[:20]:
                err_console.print(f"  {c}")
        with conn.begin() as tx, _progress() as hook:
            report = service.migrate(
                conn, backup_dir, box, keep_legacy=keep_legacy,
                allow_drop_nonempty=allowed, lock_timeout=lock_timeout, on_step=hook,
                thresholds=settings.thresholds,
            )
            if dry_run:
                tx.rollback()
    if report.outcome == "nothing to do":
        console.print("the database is already migrated: nothing to do")
        return
    _print_migration(report, dry_run=dry_run)
    total = time.perf_counter() - started
    if dry_run:
        console.print(f"[yellow]dry run[/yellow]: everything rolled back ({total:.1f}s); "
                      f"the backup in {backup_dir} was kept")
    else:
        console.print(f"[green]migrated[/green] in {total:.1f}s; backup in {backup_dir}")


_WOULD = (("dropped ", "would drop "), ("archived ", "would archive "))


def _conditional(line: str) -> str:
    """A dry run rolls everything back: say what would have happened, not what did."""
    for did, would in _WOULD:
        if line.startswith(did):
            return would + line[len(did):]
    return line


def _print_migration(report: service.MigrationReport, *, dry_run: bool = False) -> None:
    if report.plan:
        for a in report.plan.anomalies:
            console.print(f"[yellow]{a.code}[/yellow] in {a.table}: {a.count:,} — {a.detail}")
        console.print("(`hopsplane legacy plan` lists the warnings: duplicates, collisions, "
                      "overdrawn users, …)")
    table = Table(title="new tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in report.counts_after.items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    for c in report.checks:
        console.print(f"[green]ok[/green] {c.name}" if c.ok else f"[red]FAIL[/red] {c.name}")
    for line in report.retired:
        console.print(f"  {_conditional(line) if dry_run else line}")
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))


@app.command()
@friendly
def verify(backup_dir: BackupDir, database_url: DatabaseUrl = None) -> None:
    """Re-run the checks of a finished migration against its backup (loaded into a scratch
    schema inside a transaction that is rolled back). Exit 1 on any mismatch."""
    box = SecretBox(load_settings().effective_encryption_keys)
    with service.connect(_url(database_url)) as conn, conn.begin() as tx:
        _, checks = service.verify_against_backup(conn, backup_dir, box)
        tx.rollback()
    failed = 0
    for c in checks:
        if c.ok:
            console.print(f"[green]ok[/green] {c.name}")
        else:
            failed += 1
            examples = ", ".join(c.examples)
            console.print(f"[red]FAIL[/red] {c.name}: {c.problems:,} (e.g. {examples})")
    if failed:
        raise typer.Exit(1)


@app.command()
@friendly
def restore(backup_dir: BackupDir, database_url: DatabaseUrl = None) -> None:
    """Put the 17 legacy tables back from a backup into an EMPTY database (create one with
    `createdb`); checks every file's SHA-256 first and the row counts after."""
    with service.connect(_url(database_url)) as conn, conn.begin():
        counts = service.restore(conn, backup_dir)
    console.print(f"restored {len(counts)} tables, {sum(counts.values()):,} rows")


@app.command()
@friendly
def generate(
    users: Annotated[int, typer.Option("--users", help="Number of users (2 = the plan's own "
                     "counts; usage is 10 rows per user).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Create a legacy database with realistic data in an EMPTY database, for trials and
    benchmarks."""
    with service.connect(_url(database_url)) as conn, conn.begin():
        sizes = legacy_generate.generate(conn, users)
    console.print(f"generated {sizes.users:,} users, {sizes.clusters} clusters, "
                  f"{sizes.usage_rows:,} usage rows")
