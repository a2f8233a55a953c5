"""The error boundary of the CLI: an operator's ordinary mistakes (a database
that is down, missing, refusing the login or at another revision; a bad option) are one
or two lines and a non-zero exit, never a traceback; --debug shows the traceback."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hopsplane.cli.common import set_debug
from hopsplane.cli.main import app
from tests.pg import PgServer

runner = CliRunner()

# Nothing listens on port 1: the connection is refused at once.
DOWN = "postgresql://hopsplane:secret-password@127.0.0.1:1/hopsplane"

# Commands that never open the database: they succeed with any URL (`db url` prints the
# configured connection string, password included: that is what it is for).
NO_DATABASE = {("secrets", "generate-key"), ("db", "url")}
# Commands that never use the configured database because they start a throwaway world of
# their own (an embedded PostgreSQL in a temporary folder) and drive a browser over it: not
# run here (tests/browser/test_demo_pages.py takes the same walk).
OWN_WORLD = {("dev", "screenshots")}


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the tree (typer carries its own copy of click: duck-typed)."""
    if hasattr(cmd, "commands"):
        if cmd.invoke_without_command and path:
            yield path, cmd
        for name, sub in cmd.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


def _arguments(cmd: Any) -> list[str]:
    """A plausible value for every required argument and option, so that the command
    gets as far as the database."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required:
            continue
        annotation = p.type_descriptor.annotation
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            value = str(next(iter(annotation)).value)
        elif annotation in (int, float):
            value = "1"
        elif p.name and "url" in p.name:
            value = "https://hopsworks.example.com"
        elif p.name and ("day" in p.name or "date" in p.name or "through" in p.name):
            value = "2026-01-01"
        elif p.name and ("amount" in p.name or "price" in p.name):
            value = "1.00"
        elif p.name and ("cluster" in p.name or "purchase" in p.name or p.name == "id"):
            value = "00000000-0000-0000-0000-000000000000"
        else:
            value = "x"
        if p.param_type_name == "option":
            args += [p.opts[0], value]
        else:
            args.append(value)
    return args


COMMANDS = sorted(
    (path, _arguments(cmd))
    for path, cmd in _leaves(typer.main.get_command(app)) if path not in OWN_WORLD
)


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HOPSPLANE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("HOPSPLANE_API_KEY", "k" * 20)
    monkeypatch.setenv("HOPSPLANE_AUTH_API_KEY", "a" * 20)
    set_debug(False)
    yield
    set_debug(False)


def test_the_command_list_is_complete() -> None:
    names = {" ".join(path) for path, _a in COMMANDS}
    assert {"serve", "db current", "credits verify", "billing run", "legacy plan",
            "clusters list", "worker"} <= names


@pytest.mark.parametrize(("path", "args"), COMMANDS, ids=[" ".join(p) for p, _a in COMMANDS])
def test_every_command_with_the_database_down_says_so_without_a_traceback(
    path: tuple[str, ...], args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", DOWN)
    r = runner.invoke(app, [*path, *args], input="x\nx\n")
    out = r.output
    assert "Traceback" not in out, out
    if path in NO_DATABASE:
        assert r.exit_code == 0, out
        return
    assert r.exit_code != 0, out
    assert "secret-password" not in out
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    error = out[out.find("error:"):] if "error:" in out else out
    assert len([line for line in error.splitlines() if line.strip()]) <= 6, out


def test_the_messages_say_what_failed_and_what_to_do(
    pg: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", DOWN)
    down = runner.invoke(app, ["db", "current"])
    assert down.exit_code == 1 and "cannot reach the database" in down.output
    assert "HOPSPLANE_DATABASE_URL" in down.output and "--debug" in down.output

    missing = pg.url("hsp_no_such_database")
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", missing)
    r = runner.invoke(app, ["credits", "verify"])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output

    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", pg.empty_database())
    behind = runner.invoke(app, ["credits", "verify"])
    assert behind.exit_code == 1 and "hopsplane db upgrade" in behind.output, behind.output

    garbage = runner.invoke(app, ["db", "upgrade", "garbage"])
    assert garbage.exit_code == 2 and "garbage" in garbage.output
    assert "Traceback" not in garbage.output


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", DOWN)
    r = runner.invoke(app, ["--debug", "db", "current"])
    assert r.exit_code != 0 and not isinstance(r.exception, SystemExit)
    set_debug(False)
    monkeypatch.setenv("HOPSPLANE_LOG_LEVEL", "DEBUG")
    r = runner.invoke(app, ["db", "current"])
    assert not isinstance(r.exception, SystemExit)


@pytest.mark.parametrize("size", ["-3", "0", "5001", "99999"])
def test_batch_size_out_of_range_is_a_usage_error(size: str) -> None:
    r = runner.invoke(app, ["billing", "run", "--batch-size", size])
    assert r.exit_code == 2 and "--batch-size" in r.output and "Traceback" not in r.output


def test_verify_of_an_unknown_account_is_an_error(env: str) -> None:
    r = runner.invoke(app, ["credits", "verify", "--account", "nobody"])
    assert r.exit_code == 1 and "no account 'nobody'" in r.output, r.output


def test_progress_is_silent_with_quiet_or_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from hopsplane.cli import common

    monkeypatch.setattr(type(common.err_console), "is_terminal", property(lambda _s: True))
    assert common.progress_console() is common.err_console
    common.set_quiet(True)
    try:
        assert common.progress_console().quiet
    finally:
        common.set_quiet(False)
    monkeypatch.setattr(type(common.err_console), "is_terminal", property(lambda _s: False))
    assert common.progress_console().quiet  # a pipe, a log file, cron
