"""The `hopsplane` command."""

from __future__ import annotations

from typing import Annotated

import typer

from hopsplane.cli import billing, clusters, credits, db, legacy, secrets, stripe, usage, worker
from hopsplane.cli.common import console, friendly, load_settings

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
    from hopsplane.db import migrate
    from hopsplane.db.engine import Database, resolve_database_url

    settings = load_settings()
    url = resolve_database_url(settings)
    if upgrade:
        migrate.upgrade(url)
        console.print(f"schema at revision {migrate.current(url)}")
    processes = workers or settings.web_workers or os.cpu_count() or 1
    bind_host, bind_port = host or settings.host, port or settings.port
    if processes == 1:
        database = Database(url, settings)
        app_ = create_app(settings, database=database)
        try:
            uvicorn.run(
                app_, host=bind_host, port=bind_port, log_config=None, proxy_headers=True,
                access_log=False,  # the app logs each request itself
            )
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
            log_config=None,
            proxy_headers=True,
            access_log=False,
        )
    finally:
        if issuer is not None:
            issuer.stop()


def main() -> None:
    app()
