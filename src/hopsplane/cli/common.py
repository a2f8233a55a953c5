"""What every command shares: settings, the database, and errors as messages."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from hopsplane.audit.actors import Actor, bind_sessions
from hopsplane.config import DEV_ENCRYPTION_KEY, Settings
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
    # every decision of the command is the operator's in the audit log
    bind_sessions(db.sessions, Actor.operator())
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """One transaction on the configured database (what most commands need)."""
    with database(settings) as db, db.transaction() as session:
        yield session


_DEBUG = False
_QUIET = False


def set_quiet(on: bool) -> None:
    global _QUIET
    _QUIET = on


def progress_console() -> Console:
    """Where long commands draw their progress (steps, rows): stderr on a terminal;
    silent with ``--quiet`` or when stderr is not a terminal (a pipe, a log, cron)."""
    if _QUIET or not err_console.is_terminal:
        return Console(stderr=True, quiet=True)
    return err_console


def set_debug(on: bool) -> None:
    global _DEBUG
    _DEBUG = on


def debugging() -> bool:
    """``--debug`` or HOPSPLANE_LOG_LEVEL=DEBUG: let tracebacks through."""
    return _DEBUG or os.environ.get("HOPSPLANE_LOG_LEVEL", "").strip().upper() == "DEBUG"


_HINT = "  (run with --debug for the traceback)"


def explain(exc: BaseException) -> tuple[str, int] | None:
    """An operational failure as (what failed and what to do, exit code), or None for a
    bug (those keep their traceback). Exit 2 is a usage error, 1 an operational one."""
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    if isinstance(exc, CommandError):
        return f"{exc}. `hopsplane db current` lists the revisions.", 2
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return (f"HOPSPLANE_DATABASE_URL is not a usable database URL ({exc}); expected "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE."), 2
    if isinstance(exc, DBAPIError):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = first[0] if first else type(exc).__name__
        low = str(exc).lower()
        if exc.connection_invalidated or ("connection" in low and (
            "refused" in low or "failed" in low or "timeout" in low or "could not" in low
        )):
            if "password authentication failed" in low or "no pg_hba.conf" in low or (
                "role" in low and "does not exist" in low
            ):
                return (f"the database refused the login: {reason}. Check the user and "
                        "password in HOPSPLANE_DATABASE_URL."), 1
            if "database" in low and "does not exist" in low:
                return (f"{reason}. Create it (CREATE DATABASE) or fix the database name in "
                        "HOPSPLANE_DATABASE_URL."), 1
            return (f"cannot reach the database: {reason}. Start the server or fix "
                    "HOPSPLANE_DATABASE_URL (unset it to use the embedded PostgreSQL)."), 1
        if "does not exist" in low and ("relation" in low or "column" in low
                                        or "schema" in low or "function" in low):
            return (f"the database schema is not at this version's revision ({reason}). "
                    "Run `hopsplane db upgrade`."), 1
        return f"database error: {reason}", 1
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        what = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            todo = "give this user write access or set HOPSPLANE_DATA_DIR to a writable folder"
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            todo = "free some disk space or set HOPSPLANE_DATA_DIR to another disk"
        else:
            todo = "check the path and HOPSPLANE_DATA_DIR"
        return f"cannot use{where}: {what}. {todo.capitalize()}.", 1
    return None


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """The error boundary of every command: AppError and operational failures (database
    unreachable, missing, refusing the login, at another revision; disk and permissions)
    become one or two lines and exit 1 (2 for a usage error); ``--debug`` or
    HOPSPLANE_LOG_LEVEL=DEBUG shows the traceback instead."""
    if getattr(fn, "__friendly__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except AppError as exc:
            if debugging():
                raise
            err_console.print(f"[red]{exc.name}:[/red] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
        except Exception as exc:
            told = explain(exc)
            if told is None or debugging():
                raise
            message, code = told
            err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
            err_console.print(_HINT, style="dim", highlight=False)
            raise typer.Exit(code) from None

    wrapper.__friendly__ = True  # type: ignore[attr-defined]
    return wrapper


def encryption_box_keys(settings: Settings) -> list[str]:
    """The encryption keys of a command that stores secrets, with a loud warning when they
    include the development placeholder (public in this repository) outside tests."""
    keys = settings.effective_encryption_keys
    if DEV_ENCRYPTION_KEY in keys and settings.environment != "test":
        err_console.print(
            "[bold red]WARNING:[/bold red] secrets are being encrypted with the development "
            "placeholder key, which is public. Set HOPSPLANE_ENCRYPTION_KEYS to a key from "
            "`hopsplane secrets generate-key` (then `hopsplane secrets rotate`).",
            highlight=False,
        )
    return keys


def print_json(rows: Any) -> None:
    """Machine-readable output of a list command (``--json``): plain JSON on stdout, no
    colours, no wrapping, every id whole, keys as the schemas name them, Decimals as
    strings (exact), datetimes in ISO 8601."""
    import json

    from pydantic import TypeAdapter

    typer.echo(json.dumps(TypeAdapter(Any).dump_python(rows, mode="json"), indent=2))


JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (every field; amounts as strings) instead of a table."),
]


@dataclass(frozen=True)
class Col:
    """A column of a list command's table: its header, how to get the cell from a row, and
    whether it is an id (``whole``: printed in full whatever the width, since other
    commands take it)."""

    header: str
    cell: Callable[[Any], object]
    whole: bool = False
    justify: Literal["left", "right"] = "left"


def print_list(
    rows: Sequence[Any],
    columns: Sequence[Col],
    *,
    as_json: bool,
    json_rows: Any = None,
    title: str | None = None,
) -> None:
    """The one output of every list command: ``--json`` prints ``json_rows`` (default: the
    rows themselves) with :func:`print_json`; otherwise a table whose id columns are never
    cut or wrapped, at any terminal width and when piped."""
    if as_json:
        print_json(rows if json_rows is None else json_rows)
        return
    cells = [["" if (v := c.cell(r)) is None else str(v) for c in columns] for r in rows]
    table = Table(title=title)
    for i, c in enumerate(columns):
        if c.whole:
            width = max([len(c.header), *(len(row[i]) for row in cells)])
            table.add_column(c.header, no_wrap=True, min_width=width, justify=c.justify)
        else:
            table.add_column(c.header, justify=c.justify, overflow="fold")
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    # piped: one line per row, nothing wrapped (for grep, awk, cut); on a terminal: fit
    # its width, other columns wrap, but never narrower than the ids need
    wanted = Measurement.get(console, console.options.update(max_width=10_000), table)
    needed = wanted.minimum if console.is_terminal else wanted.maximum
    out = console
    if needed > console.width:
        out = Console(file=console.file, width=needed, force_terminal=console.is_terminal,
                      no_color=console.no_color)
    out.print(table)


def fail(message: str, code: int = 1) -> Any:
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)
