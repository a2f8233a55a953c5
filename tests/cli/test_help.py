"""`--help` of every command reads as paragraphs at 80 columns: no sentence is broken
where the source's docstring happened to break it, in the description or in a group's
list of commands."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hopsplane.cli.main import app, reflow

runner = CliRunner()
WIDTH = 80


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():  # a group
        found += _paths(sub, (*prefix, name))
    return found


PATHS = _paths(typer.main.get_command(app))


def _ragged(lines: list[str], start: int, width: int) -> list[str]:
    """Lines of one paragraph (text from column ``start``, ``width`` characters wide) that
    end although the next line's first word would have fitted: a break from the source,
    not from the terminal."""
    bad = []
    for line, following in itertools.pairwise(lines):
        text, nxt = line[start:].rstrip(), following[start:].strip()
        if text and nxt and len(text) + 1 + len(nxt.split()[0]) <= width:
            bad.append(text)
    return bad


def _description(out: list[str]) -> list[list[str]]:
    """The paragraphs above the first panel (each line is ' text ' on 80 columns)."""
    paragraphs: list[list[str]] = [[]]
    for line in out[out.index(next(x for x in out if x.lstrip().startswith("Usage:"))) + 1:]:
        if line.startswith("╭"):
            break
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _command_rows(out: list[str]) -> tuple[list[list[str]], int, int]:
    """The rows of the Commands panel (a row: its first line and its continuations), the
    column where the help text starts, and that column's width."""
    try:
        top = next(i for i, x in enumerate(out) if x.startswith("╭─ Commands"))
    except StopIteration:
        return [], 0, 0
    rows: list[list[str]] = []
    start = 0
    for line in out[top + 1:]:
        if line.startswith("╰"):
            break
        body = line[1:-1]
        if body[1] != " ":  # a command's name: a new row
            name_end = body.index(" ", 1)
            start = len(body) - len(body[name_end:].lstrip()) + 1
            rows.append([line[:-1]])
        else:
            rows[-1].append(line[:-1])
    return rows, start, len(out[top]) - 2 - start


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "hopsplane" for p in PATHS])
def test_help_paragraphs_wrap_as_paragraphs(path: tuple[str, ...]) -> None:
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert r.exit_code == 0, r.output
    out = r.output.splitlines()
    assert max(len(line) for line in out) <= WIDTH
    broken = [t for p in _description(out) for t in _ragged(p, 1, WIDTH - 2)]
    rows, start, width = _command_rows(out)
    broken += [t for row in rows for t in _ragged(row, start, width)]
    assert not broken, "lines broken mid-paragraph:\n" + "\n".join(broken)


def test_reflow_joins_the_lines_of_each_paragraph_and_keeps_marked_ones() -> None:
    text = """First line
    goes on.

    Second
    paragraph.

    \b
    kept
    as is"""
    assert reflow(text) == "First line goes on.\n\nSecond paragraph.\n\n\b\nkept\nas is"
