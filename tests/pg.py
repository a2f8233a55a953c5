"""The PostgreSQL server of a test run: HOPSPLANE_TEST_DATABASE_URL, or an embedded one.

One run creates a template database built by the Alembic migrations, then clones it
(CREATE DATABASE ... TEMPLATE) for every test that needs committed data of its own.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from hopsplane.config import normalise_database_url
from hopsplane.db import migrate
from hopsplane.db.embedded import replace_database, start_embedded


def _remove_in_background(folder: Path) -> None:
    subprocess.Popen(["rm", "-rf", str(folder)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class PgServer:
    def __init__(self) -> None:
        configured = os.environ.get("HOPSPLANE_TEST_DATABASE_URL", "").strip()
        if configured:
            self.admin_url = configured.replace("postgresql+psycopg://", "postgresql://")
            self.kind = "configured"
        else:
            root = Path(tempfile.mkdtemp(prefix="hopsplane-test-pg-"))
            # atexit runs last-registered first: this runs after the library has stopped
            # the server, and removes the folder in the background so that the run ends
            # within seconds of its last test, yet leaves nothing under /tmp.
            atexit.register(_remove_in_background, root)
            self.admin_url = start_embedded(root / "pgdata")
            self.kind = "embedded"
            self._throwaway_settings()
        self.run_id = uuid.uuid4().hex[:10]
        self.created: list[str] = []
        self.template = self._name("tmpl")
        self._create(self.template)
        migrate.upgrade(self.url(self.template))

    def _throwaway_settings(self) -> None:
        """The embedded server of a test run is deleted at exit: nothing on it needs to
        survive a crash, so it skips flushing to disk (fsync, full-page writes, waiting for
        commits to reach the disk). What a transaction sees, locks and constraints are
        unchanged. Never done to a configured server."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in ("fsync", "full_page_writes", "synchronous_commit"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(name)))
            conn.execute("SELECT pg_reload_conf()")

    def _name(self, what: str) -> str:
        return f"hsp_{self.run_id}_{what}"

    def url(self, name: str) -> str:
        return normalise_database_url(replace_database(self.admin_url, name))

    def _create(self, name: str, template: str | None = None) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            conn.execute(stmt)
        self.created.append(name)

    def empty_database(self) -> str:
        """A new database with nothing in it (for migration tests)."""
        name = self._name(f"e{len(self.created)}")
        self._create(name)
        return self.url(name)

    def migrated_database(self) -> str:
        """A new database at head, cloned from the run's template."""
        name = self._name(f"d{len(self.created)}")
        self._create(name, template=self.template)
        return self.url(name)

    def drop_all(self) -> None:
        if self.kind == "embedded":
            return  # the whole throw-away server and its data folder go at exit
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in reversed(self.created):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
