"""The psycopg connection under a session, shared by the modules of the ledger's SQL."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session


def _driver(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection of the session's transaction. The two statements of every
    single posting run on it directly: SQLAlchemy's execution layer costs several times
    the CPU of the statements themselves, and on a small machine the clients' CPU is what
    bounds postings per second. Same connection, same transaction."""
    conn: psycopg.Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    return conn


def _fetch_one(session: Session, statement: str, params: dict[str, Any]) -> Any:
    """One row of a statement run on the session's psycopg connection, with psycopg's
    errors raised as SQLAlchemy's (what the callers and the API's handlers expect): a
    constraint refusal as IntegrityError, a value PostgreSQL cannot hold (a NUL in text)
    as DataError."""
    try:
        return _driver(session).execute(statement, params).fetchone()
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, params, exc) from exc
    except psycopg.DataError as exc:
        raise DataError(statement, params, exc) from exc


def _psycopg_style(statement: str) -> str:
    """A SQLAlchemy text() statement (``:name`` parameters) in psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement.replace("%", "%%"))


