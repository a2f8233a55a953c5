"""hopsplane dev: the whole local world in one process, and screenshots of its console."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hopsplane.cli import processes
from hopsplane.cli.common import console, fail, friendly, load_settings
from hopsplane.cli.serve import warn_about_orphans
from hopsplane.observability import configure_logging

if TYPE_CHECKING:
    from hopsplane.config import Settings

app = typer.Typer(invoke_without_command=True)

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@app.callback()
@friendly
def run(
    ctx: typer.Context,
    demo: Annotated[bool, typer.Option(
        help="Fill a demo account (owner, members, an organization, 30 days of usage, a "
        "grant and top-ups) so that every console page has data. Running it again adds "
        "nothing twice.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (HOPSPLANE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Port (HOPSPLANE_PORT).")] = None,
) -> None:
    """The local world in one command, for a laptop (never for production).

    Starts everything a newcomer needs to try hopsplane, in this one process: the
    embedded PostgreSQL (as `serve` does, unless HOPSPLANE_DATABASE_URL is set), the API
    and the console with the development sign-in (any email, no password), a worker (the
    job loop of `hopsplane worker`: placement, provisioning, billing), and a Hopsworks
    stand-in answering on a local port, registered as the cluster `local-standin`, so that
    a new account is placed and provisioned within seconds.

    Ctrl-C (or SIGTERM) stops all of it: the server, the worker, the stand-in (its users and
    projects are kept in HOPSPLANE_DATA_DIR for the next start) and the embedded
    PostgreSQL."""
    if ctx.invoked_subcommand is not None:
        return
    started = time.monotonic()
    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    settings = _development(settings, bind_host, bind_port)
    problem = processes.port_problem(bind_host, bind_port)
    if problem is not None:
        fail(problem)
    warn_about_orphans(bind_port)
    _run_world(settings, bind_host, bind_port, demo=demo, started=started)


def _development(settings: Settings, host: str, port: int) -> Settings:
    """The settings of the local world: the development sign-in unless Auth0 is
    configured, and a public URL at the port it listens on (the sign-in comes back there)."""
    if settings.environment != "development":
        fail(f"`hopsplane dev` runs a development world, but HOPSPLANE_ENVIRONMENT is "
             f"{settings.environment}. Unset it (or set it to development), or use "
             "`hopsplane serve` and `hopsplane worker`.")
    changes: dict[str, object] = {}
    if not settings.auth_dev_issuer and not settings.auth0_domain:
        changes["auth_dev_issuer"] = True
    if "HOPSPLANE_PUBLIC_URL" not in os.environ and settings.public_url == DEFAULT_PUBLIC_URL:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        changes["public_url"] = f"http://{shown}:{port}"
    if "HOPSPLANE_LOG_LEVEL" not in os.environ and settings.log_level == "INFO":
        # a line per request and per job would bury where to sign in; asked for, they show
        changes["log_level"] = "WARNING"
        configure_logging("WARNING", settings.effective_log_format)
    return settings.model_copy(update=changes) if changes else settings


def _run_world(settings: Settings, host: str, port: int, *, demo: bool,
               started: float) -> None:
    import uvicorn

    from hopsplane.api.app import create_app
    from hopsplane.api.protocol import uvicorn_options
    from hopsplane.cli.worker import build_worker, start_job_loop, wait_for_job_loop
    from hopsplane.composition.hooks import build_account_hooks
    from hopsplane.crypto import SecretBox
    from hopsplane.db import migrate
    from hopsplane.db.engine import Database, resolve_database_url
    from hopsplane.devworld import demo as demo_data
    from hopsplane.devworld import world

    url = resolve_database_url(settings)  # the embedded server, stopped when this exits
    migrate.upgrade(url)
    console.print(f"schema at revision {migrate.current(url)}")
    database = Database(url, settings)
    standin = world.start_standin(settings.data_dir)
    stop = threading.Event()
    world.keep_saved(standin, settings.data_dir, stop)
    threads: list[threading.Thread] = []
    worker = None
    try:
        with database.transaction() as session:
            cluster = world.register_standin(
                session, SecretBox(settings.effective_encryption_keys), standin)
        account = None
        if demo:
            with console.status("filling the demo account...") as status:
                account = demo_data.fill(database, settings, build_account_hooks(settings),
                                         lambda step: status.update(f"demo: {step}..."))
        worker = build_worker(settings, database)
        threads = start_job_loop(worker, stop, 1)
        app_ = create_app(settings, database=database)
        server = uvicorn.Server(uvicorn.Config(
            app_, host=host, port=port, log_level=settings.log_level.lower(),
            **uvicorn_options(settings.web_header_timeout_seconds)))

        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                _banner(settings, cluster.name, standin.url, account,
                        time.monotonic() - started)

        threading.Thread(target=announce, name="dev-banner", daemon=True).start()
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once stopped
            server.run()
    finally:
        stop.set()
        if worker is not None:
            wait_for_job_loop(worker, stop, threads)
        world.stop_standin(standin, settings.data_dir)
        database.dispose()
        console.print("stopped: server, worker, Hopsworks stand-in"
                      + ("" if settings.database_url else ", embedded PostgreSQL"))


def _banner(settings: Settings, cluster: str, standin_url: str, account: object,
            seconds: float) -> None:
    from hopsplane.devworld import demo as demo_data

    base = settings.public_url.rstrip("/")
    lines = [
        f"[bold]hopsplane dev is ready[/bold] (in {seconds:.0f} s)",
        f"  console   {base}/console",
    ]
    if settings.auth_dev_issuer:
        lines.append("  sign in   any email that could receive mail, no password "
                     "(the development sign-in)")
    if account is not None:
        people = [(demo_data.OWNER, "account owner"), (demo_data.MEMBERS[0],
                  "organization admin"), (demo_data.MEMBERS[1], "member"),
                  (demo_data.OPERATOR, "platform admin")]
        width = max(len(p.email) for p, _ in people)
        for n, (person, role) in enumerate(people):
            lines.append(f"  {'demo' if n == 0 else '':<8}  {person.email:<{width}}  {role}")
    lines += [
        f"  cluster   {cluster}, a Hopsworks stand-in at {standin_url}",
        "  worker    running: placement, provisioning, billing "
        "(HOPSPLANE_LOG_LEVEL=INFO shows every job and request)",
        f"  API       {base}/docs",
        "Ctrl-C stops all of it.",
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
@friendly
def screenshots(
    out: Annotated[Path, typer.Option(
        file_okay=False, help="Folder the PNGs are written to (made if missing).")],
    url: Annotated[str | None, typer.Option(
        help="Base URL of a running `hopsplane dev --demo` (default: start a throwaway one "
        "on a free port, with an embedded PostgreSQL in a temporary folder, and remove it "
        "afterwards).")] = None,
    chromium: Annotated[Path, typer.Option(
        help="The Chromium executable Playwright drives.")] = Path("/usr/bin/chromium"),
) -> None:
    """Screenshots of every console page with the demo data, at 1280 px and 390 px, for a
    reviewer: the owner's, an organization admin's, a member's and a platform admin's
    pages, and the signed-out page. Needs Playwright (the package's test extra) and
    Chromium (Debian's `chromium`)."""
    from hopsplane.devworld import screenshots as shots

    problem = shots.missing(chromium)
    if problem:
        fail(problem)
    out.mkdir(parents=True, exist_ok=True)
    if url is not None:
        base = url.rstrip("/")
        problem = shots.not_a_demo_world(base)
        if problem:
            fail(problem)
        try:
            written = shots.walk(base, chromium, out=out)
        except shots.WalkFailed as exc:
            fail(str(exc))
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="hopsplane-screenshots-") as scratch:
            env = {k: v for k, v in os.environ.items() if k != "HOPSPLANE_DATABASE_URL"}
            env["HOPSPLANE_DATA_DIR"] = scratch
            console.print("starting a throwaway `hopsplane dev --demo`...")
            try:
                with shots.demo_world(env, log=Path(scratch) / "dev.log") as base:
                    written = shots.walk(base, chromium, out=out)
            except shots.WalkFailed as exc:
                fail(str(exc))
    console.print(f"{len(written)} screenshots in {out}", highlight=False)
