"""The `hopsplane` command."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from hopsplane.cli import (
    accounts,
    audit,
    billing,
    clusters,
    credits,
    db,
    dev,
    legacy,
    secrets,
    serve,
    stripe,
    usage,
    worker,
)
from hopsplane.cli.common import debugging, friendly, set_debug, set_quiet

app = typer.Typer(
    name="hopsplane",
    help="Control plane of the managed Hopsworks service. Without HOPSPLANE_DATABASE_URL every "
    "command uses an embedded PostgreSQL kept in HOPSPLANE_DATA_DIR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(dev.app, name="dev")
app.add_typer(db.app, name="db")
app.add_typer(credits.app, name="credits")
app.add_typer(billing.app, name="billing")
app.add_typer(secrets.app, name="secrets")
app.add_typer(clusters.app, name="clusters")
app.add_typer(worker.app, name="worker")
app.add_typer(stripe.app, name="stripe")
app.add_typer(usage.app, name="usage")
app.add_typer(legacy.app, name="legacy")
app.add_typer(accounts.app, name="accounts")
app.add_typer(accounts.admins, name="admins")
app.command("audit")(audit.audit_command)


@app.callback()
def _global(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the full traceback of a failure (also HOPSPLANE_LOG_LEVEL=DEBUG).",
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress display for long commands."),
    ] = False,
) -> None:
    """Control plane of the managed Hopsworks service. Without HOPSPLANE_DATABASE_URL every
    command uses an embedded PostgreSQL kept in HOPSPLANE_DATA_DIR. Ids with a `|` (such
    as `auth0|abc`) need quotes in a shell: 'auth0|abc'."""
    set_debug(debug)
    set_quiet(quiet)
    _library_warnings(shown=debugging())


def _library_warnings(*, shown: bool) -> None:
    """Warnings of the libraries underneath (SQLAlchemy, embedded PostgreSQL, ...) speak to
    their developers, not to an operator, who can do nothing about them: hidden, shown
    with --debug. Warnings asked for with python -W or PYTHONWARNINGS are left alone."""
    import sys
    import warnings

    if sys.warnoptions:
        return
    warnings.simplefilter("default" if shown else "ignore")


def reflow(text: str) -> str:
    """A help text as paragraphs: the line breaks of a docstring's source are not the
    reader's, so each paragraph becomes one line that the help screen wraps to the
    terminal's width (typer keeps single line breaks in all but the first paragraph and
    in the command lists, which broke sentences mid-line). A paragraph starting with \\b
    keeps its lines."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _help_as_paragraphs(typer_app: typer.Typer) -> None:
    """Reflow every help text where it is, so that typer's choice between a docstring and
    an explicit help= stays what it was."""
    infos: list[typer.models.CommandInfo | typer.models.TyperInfo] = list(
        typer_app.registered_commands)
    if typer_app.registered_callback is not None:
        infos.append(typer_app.registered_callback)
    infos += typer_app.registered_groups
    for info in infos:
        if isinstance(info.help, str):
            info.help = reflow(info.help)
        callback = info.callback
        if callback is not None and callback.__doc__:
            callback.__doc__ = reflow(callback.__doc__)
    if isinstance(typer_app.info.help, str):
        typer_app.info.help = reflow(typer_app.info.help)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _help_as_paragraphs(group.typer_instance)


def _every_command_friendly(typer_app: typer.Typer) -> None:
    """One error boundary for every command, including ones added later without the
    decorator: operational failures become a message, not a traceback."""
    for command in typer_app.registered_commands:
        if command.callback is not None:
            command.callback = friendly(command.callback)
    if typer_app.registered_callback is not None and typer_app.registered_callback.callback:
        cb = typer_app.registered_callback.callback
        if cb is not _global:
            typer_app.registered_callback.callback = friendly(cb)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _every_command_friendly(group.typer_instance)


_every_command_friendly(app)
_help_as_paragraphs(app)


def _stop_on_sigterm() -> None:
    """SIGTERM ends a command the way Ctrl-C does: through the interpreter's exit, so the
    embedded PostgreSQL this process started is stopped (``serve`` and ``worker`` install
    their own graceful handlers over this one)."""
    import signal

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def main() -> None:
    _stop_on_sigterm()
    app()
