"""The PostgreSQL server of a test run: HOPSPLANE_TEST_DATABASE_URL, or an embedded one.

One run creates a template database built by the Alembic migrations, then clones it
(CREATE DATABASE ... TEMPLATE) for every test that needs committed data of its own.

Set-up costs, not tests, were most of a run on a configured server, so:
- the next clone is made in a background thread while the current test runs (a clone
  waits mostly for the server's disk), and a test that asks for one takes it ready-made;
- the databases of a run are dropped after it, by a detached process: every DROP
  DATABASE makes the server checkpoint (seconds each on a busy server), and dropping them
  one after another at the end of the session was ~40% of a run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
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
        self._lock = threading.Lock()
        self._count = 0
        self._spare: threading.Thread | None = None
        self._ready: list[str] = []
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
        with self._lock:
            self._count += 1
            return f"hsp_{self.run_id}_{what}{self._count}"

    def url(self, name: str) -> str:
        return normalise_database_url(replace_database(self.admin_url, name))

    def _create(self, name: str, template: str | None = None) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            with self._lock:
                self.created.append(name)  # before it exists: a failed clone is dropped too
            conn.execute(stmt)

    def empty_database(self) -> str:
        """A new database with nothing in it (for migration tests)."""
        name = self._name("e")
        self._create(name)
        return self.url(name)

    def migrated_database(self) -> str:
        """A new database at head, cloned from the run's template (nobody else's: a test
        may commit, race and leave anything in it)."""
        self._wait_for_spare()
        name = self._ready.pop() if self._ready else self._clone()
        self._spare = threading.Thread(target=self._clone_spare, daemon=True)
        self._spare.start()
        return self.url(name)

    def _clone(self) -> str:
        name = self._name("d")
        self._create(name, template=self.template)
        return name

    def _clone_spare(self) -> None:
        # On an error the next test clones its own, and sees the error if there is one.
        with contextlib.suppress(psycopg.Error):
            self._ready.append(self._clone())

    def _wait_for_spare(self) -> None:
        if self._spare is not None:
            self._spare.join()
            self._spare = None

    def drop_all(self) -> None:
        """Drop every database of the run, after it: a detached process does it, so that
        the run ends at its last test and leaves nothing on the server."""
        self._wait_for_spare()
        if self.kind == "embedded":
            return  # the whole throw-away server and its data folder go at exit
        subprocess.Popen([sys.executable, "-c", _DROPPER, self.admin_url,
                          *reversed(self.created)],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_DROPPER = """
import sys
import psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for name in sys.argv[2:]:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
        except psycopg.Error:
            pass
"""
