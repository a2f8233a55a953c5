"""Engines and sessions.

Edges build one :class:`Database` from settings at start-up and open one transaction per
request, job or command with :meth:`Database.transaction` (committed when the block ends
without an exception, rolled back otherwise). Services receive the session and never
commit.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    InvalidRequestError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from hopsplane.config import Settings, normalise_database_url


def resolve_database_url(settings: Settings) -> str:
    """The configured server, or the embedded one (started on demand) when none is set."""
    if settings.database_url:
        return settings.database_url
    from hopsplane.db.embedded import ensure_database, start_embedded

    admin = start_embedded(settings.data_dir / "pgdata")
    return normalise_database_url(ensure_database(admin, settings.embedded_database_name))


def _connect_args(settings: Settings) -> dict[str, Any]:
    options = "-c timezone=UTC"
    if settings.db_statement_timeout_ms:
        options += f" -c statement_timeout={settings.db_statement_timeout_ms}"
    if settings.db_idle_in_transaction_timeout_ms:
        # Second line of defence (the first: no code path keeps a transaction open and
        # idle, see docs/scaling.md): the server ends a session that does.
        options += (
            " -c idle_in_transaction_session_timeout="
            f"{settings.db_idle_in_transaction_timeout_ms}"
        )
    args: dict[str, Any] = {
        "options": options,
        "application_name": "hopsplane",
        "connect_timeout": settings.db_connect_timeout_seconds,
        # A primary that vanished without closing its sockets (power loss, a network
        # partition, a failover behind a virtual IP) would otherwise leave a pooled or
        # LISTEN connection waiting on a dead peer for the kernel's two hours.
        **KEEPALIVES,
    }
    if not settings.db_prepared_statements:
        args["prepare_threshold"] = None  # never prepare (PgBouncer in transaction mode)
    return args


KEEPALIVES: dict[str, Any] = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
}

_NOT_THE_PRIMARY = frozenset({
    "25006",  # read_only_sql_transaction: this server is (now) a standby
    "57P01",  # admin_shutdown: fast shutdown, as in a switchover or a Patroni restart
    "57P02",  # crash_shutdown: another backend crashed, the server is restarting
    "57P03",  # cannot_connect_now: starting up or shutting down
})


def libpq_conninfo(url: str) -> str:
    """The libpq connection string of a database URL, for code that talks to psycopg
    directly (the worker's LISTEN connection). A multi-host URL becomes ``host=h1,h2
    port=p1,p2 ... target_session_attrs=read-write``, which libpq understands and the
    rewritten URL form (``?host=h1:p1&host=h2:p2``) is not."""
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_database_url(url))
    params: dict[str, str] = {}
    for key, value in parsed.query.items():
        if key != "host":
            params[key] = value if isinstance(value, str) else value[-1]
    listed = parsed.query.get("host")
    if listed:
        pairs = [h.rsplit(":", 1) if ":" in h.rsplit("]", 1)[-1] else [h, "5432"]
                 for h in ([listed] if isinstance(listed, str) else listed)]
        params["host"] = ",".join(h.strip("[]") for h, _ in pairs)
        params["port"] = ",".join(p for _, p in pairs)
    else:
        if parsed.host:
            params["host"] = parsed.host
        if parsed.port:
            params["port"] = str(parsed.port)
    for key, part in (("dbname", parsed.database), ("user", parsed.username),
                      ("password", parsed.password)):
        if part:
            params[key] = str(part)
    return make_conninfo(**params)


def _drop_connection_of_a_lost_primary(context: Any) -> None:
    """Errors that mean "this server is not (or no longer) a primary that serves": the
    connection is thrown away (and the pool with it, SQLAlchemy invalidates every pooled
    connection on a disconnect), so the next checkout connects afresh and libpq's
    ``target_session_attrs=read-write`` finds the current primary. The serving middleware
    sees ``connection_invalidated`` and answers 503, or runs a request that had written
    nothing once more."""
    sqlstate = getattr(context.original_exception, "sqlstate", None) or ""
    if sqlstate in _NOT_THE_PRIMARY or sqlstate.startswith("08"):
        context.is_disconnect = True


@dataclass(slots=True)
class UnitOfWork:
    """What the database saw of one request so far: statements that completed and COMMITs
    sent. The serving middleware (:mod:`hopsplane.api.serving`) binds one to the request's
    context and reads it to decide whether a request that met a broken connection can be
    run again (nothing written yet)."""

    statements: int = 0
    commits: int = 0


current_unit: ContextVar[UnitOfWork | None] = ContextVar("hopsplane_unit_of_work", default=None)


def _count_statement(*_args: Any) -> None:
    unit = current_unit.get()
    if unit is not None:
        unit.statements += 1


def _count_commit(_conn: Any) -> None:
    unit = current_unit.get()
    if unit is not None:
        unit.commits += 1


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot serve right now: a connection that broke or was refused, a
    backend the server terminated, a pool with no connection to give in time, a statement
    cancelled by a timeout. The request may succeed later (503 + Retry-After)."""
    import psycopg

    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError | psycopg.OperationalError
                  | psycopg.InterfaceError):
        return True
    if isinstance(exc, InvalidRequestError) and str(exc).startswith("This connection is closed"):
        return True  # the pool's checkout found every connection it tried dead (3 attempts)
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _refuse_dead_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout check that costs no round trip (unlike ``pool_pre_ping``, which sends
    a query before every transaction: on a posting that was a fifth of the client's CPU).

    An idle connection has nothing to read. When the server closes it (restart,
    ``pg_terminate_backend``, idle timeout) it sends an error and closes the socket, which
    makes the socket readable, or psycopg has already seen it broken; either way the pool
    drops it and checks out another (SQLAlchemy retries the checkout on
    DisconnectionError). A connection whose peer vanished without a word is only found on
    use, as with any check made before the transaction starts."""
    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.status != 0:  # 0 = CONNECTION_OK
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    if readable:
        raise DisconnectionError("the server sent something on an idle connection")


class Database:
    """Sync and async engines plus session factories for one database URL."""

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.url = normalise_database_url(url)
        self.engine: Engine = create_engine(
            self.url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_args=_connect_args(settings),
        )
        event.listen(self.engine, "checkout", _refuse_dead_connection)
        event.listen(self.engine, "handle_error", _drop_connection_of_a_lost_primary)
        event.listen(self.engine, "after_cursor_execute", _count_statement)
        event.listen(self.engine, "commit", _count_commit)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._settings = settings
        self._async_engine: AsyncEngine | None = None
        self._async_sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(resolve_database_url(settings), settings)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @property
    def async_engine(self) -> AsyncEngine:
        if self._async_engine is None:
            # Only readiness checks use it: one connection is enough.
            self._async_engine = create_async_engine(
                self.url,
                pool_size=1,
                max_overflow=1,
                pool_timeout=self._settings.db_pool_timeout_seconds,
                pool_pre_ping=True,
                connect_args=_connect_args(self._settings),
            )
            event.listen(self._async_engine.sync_engine, "handle_error",
                         _drop_connection_of_a_lost_primary)
        return self._async_engine

    @asynccontextmanager
    async def async_transaction(self) -> AsyncIterator[AsyncSession]:
        if self._async_sessions is None:
            self._async_sessions = async_sessionmaker(self.async_engine, expire_on_commit=False)
        async with self._async_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    async def adispose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
        self.engine.dispose()
