"""hopsplane serve: the HTTP API and the console, in one or several processes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from hopsplane.cli import processes
from hopsplane.cli.common import console, err_console, fail, friendly, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def worker_app() -> FastAPI:
    """The app of one process of `serve --workers N` (uvicorn's factory, called in the
    worker): first the pact to die with the `serve` that started it, then the app."""
    from hopsplane.api.app import app_from_environment

    marker = processes.parse_marker(os.environ.get(processes.WORKER_OF_ENV, ""))
    if marker is not None:
        processes.die_with_parent(marker[0])
    return app_from_environment()


def warn_about_orphans(port: int) -> None:
    """Server processes of another port whose `serve` is gone: not in the way of this
    one, but nobody stops them either."""
    others = [w for w in processes.orphaned_workers() if w.port != port]
    for port_, pids in sorted(_by_port(others).items()):
        err_console.print(
            f"[yellow]warning:[/yellow] server processes {', '.join(map(str, pids))} on port "
            f"{port_} outlived their `hopsplane serve`; stop them with "
            f"`kill {' '.join(map(str, pids))}`.", highlight=False)


def _by_port(workers: list[processes.ServeWorker]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for w in workers:
        out.setdefault(w.port, []).append(w.pid)
    return out


@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOPSPLANE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Port (HOPSPLANE_PORT).")] = None,
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
    """Run the HTTP API and the console in one or more processes. Starts the embedded
    PostgreSQL when no server is configured and upgrades the schema first. A server
    process that dies is replaced; they all stop with this command, even when it is
    killed.

    Refuses to start, before touching the database, when the port is taken: it names the
    port and the processes holding it (server processes left behind by a `serve` that
    was killed included)."""
    import uvicorn

    from hopsplane.api.app import DEV_ISSUER_URL_ENV, create_app
    from hopsplane.api.protocol import uvicorn_options
    from hopsplane.db import migrate
    from hopsplane.db.engine import Database, resolve_database_url

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    problem = processes.port_problem(bind_host, bind_port)
    if problem is not None:
        fail(problem)
    warn_about_orphans(bind_port)
    url = resolve_database_url(settings)
    if upgrade:
        migrate.upgrade(url)
        console.print(f"schema at revision {migrate.current(url)}")
    count = workers or settings.web_workers or os.cpu_count() or 1
    options = uvicorn_options(settings.web_header_timeout_seconds)
    if count == 1:
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
    os.environ[processes.WORKER_OF_ENV] = processes.worker_marker(
        os.getpid(), bind_port, bind_host)
    issuer = None
    if settings.auth_dev_issuer:
        from hopsplane.integrations.auth0 import LocalIssuer

        issuer = LocalIssuer(claims_namespace=settings.auth0_claims_namespace)
        os.environ[DEV_ISSUER_URL_ENV] = issuer.issuer
        console.print(
            f"development sign-in: one issuer for all {count} processes at "
            f"{issuer.issuer} (API tokens: curl -d email=you@example.com "
            f"{issuer.issuer}dev/token)"
        )
    try:
        uvicorn.run(
            "hopsplane.cli.serve:worker_app",
            factory=True,
            workers=count,
            host=bind_host,
            port=bind_port,
            **options,
        )
    finally:
        if issuer is not None:
            issuer.stop()
