"""The `hopsplane` command."""

from __future__ import annotations

from typing import Annotated

import typer

from hopsplane.cli import (
    accounts,
    billing,
    clusters,
    credits,
    db,
    legacy,
    secrets,
    stripe,
    usage,
    worker,
)
from hopsplane.cli.common import console, friendly, load_settings, set_debug, set_quiet

app = typer.Typer(
    name="hopsplane",
    help="Control plane of the managed Hopsworks service. Without HOPSPLANE_DATABASE_URL every "
    "command uses an embedded PostgreSQL kept in HOPSPLANE_DATA_DIR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOPSPLANE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HOPSPLANE_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64,
            help="Server processes sharing the port (HOPSPLANE_WEB_WORKERS; default: the "
            "number of cores). Each has its own connection pool: see the README on sizing.",
        ),
    ] = None,
    upgrade: Annotated[
        bool, typer.Option(help="Upgrade the schema to head before serving.")
    ] = True,
) -> None:
    """Run the HTTP API in one or more processes. Starts the embedded PostgreSQL when no
    server is configured and upgrades the schema first. A worker process that dies is
    replaced."""
    import os

    import uvicorn

    from hopsplane.api.app import DEV_ISSUER_URL_ENV, create_app
    from hopsplane.api.protocol import uvicorn_options
    from hopsplane.db import migrate
    from hopsplane.db.engine import Database, resolve_database_url

    settings = load_settings()
    url = resolve_database_url(settings)
    if upgrade:
        migrate.upgrade(url)
        console.print(f"schema at revision {migrate.current(url)}")
    processes = workers or settings.web_workers or os.cpu_count() or 1
    bind_host, bind_port = host or settings.host, port or settings.port
    options = uvicorn_options(settings.web_header_timeout_seconds)
    if processes == 1:
        database = Database(url, settings)
        app_ = create_app(settings, database=database)
        try:
            uvicorn.run(app_, host=bind_host, port=bind_port, **options)
        finally:
            database.dispose()
        return
    # Several processes: each builds its own app (and pool) from the environment. The
    # database URL is passed on resolved (the embedded server is started once, here), and
    # the development issuer runs here, once, so that every process trusts one key.
    os.environ["HOPSPLANE_DATABASE_URL"] = url
    issuer = None
    if settings.auth_dev_issuer:
        from hopsplane.integrations.auth0 import LocalIssuer

        issuer = LocalIssuer(claims_namespace=settings.auth0_claims_namespace)
        os.environ[DEV_ISSUER_URL_ENV] = issuer.issuer
        console.print(
            f"development sign-in: one issuer for all {processes} processes at "
            f"{issuer.issuer} (API tokens: curl -d email=you@example.com "
            f"{issuer.issuer}dev/token)"
        )
    try:
        uvicorn.run(
            "hopsplane.api.app:app_from_environment",
            factory=True,
            workers=processes,
            host=bind_host,
            port=bind_port,
            **options,
        )
    finally:
        if issuer is not None:
            issuer.stop()


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
