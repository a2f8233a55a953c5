"""What every command shares: settings, the database, and errors as messages."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.orm import Session

from hopsplane.config import Settings
from hopsplane.db.engine import Database, resolve_database_url
from hopsplane.errors import AppError
from hopsplane.observability import configure_logging

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err_console.print(f"[red]configuration error:[/red] {problems}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.effective_log_format)
    return settings


def database_url(settings: Settings) -> str:
    return resolve_database_url(settings)


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The configured database for the length of a command, its pool closed afterwards."""
    db = Database(resolve_database_url(settings), settings)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """One transaction on the configured database (what most commands need)."""
    with database(settings) as db, db.transaction() as session:
        yield session


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn AppError into a one-line message and a non-zero exit; no traceback for a
    user mistake."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AppError as exc:
            err_console.print(f"[red]{exc.name}:[/red] {exc.message}")
            raise typer.Exit(1) from None

    return wrapper


def fail(message: str, code: int = 1) -> Any:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
