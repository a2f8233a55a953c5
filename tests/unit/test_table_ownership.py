"""A domain's repository touches only its own tables.

The ownership map is the one in docs/architecture.md ("Which domain owns which table" and
"Published read models"): parsed here, so the document and the check cannot disagree. For
every ``<domain>/repository.py`` the relations its SQL names (after FROM, JOIN, UPDATE,
INTO, TABLE, in any string literal of the module, f-strings included) and the tables of the
models it imports from ``hopsplane.db.models`` must be the domain's own, one it owns columns
on, or a published view. Every table and view of the migrated database must be in the map.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.db import models

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "hopsplane"
DOC = ROOT / "docs" / "architecture.md"


@dataclass
class OwnershipMap:
    owner: dict[str, str] = field(default_factory=dict)  # table -> owning domain
    column_owners: dict[str, set[str]] = field(default_factory=dict)  # table -> domains
    views: dict[str, str] = field(default_factory=dict)  # published view -> owner


def _rows(doc: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading``."""
    after = doc[doc.index(heading):]
    rows: list[list[str]] = []
    started = False
    for line in after.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= {"-"} and cells[0] not in ("table", "view"):
                rows.append(cells)
        elif started:
            break
    assert rows, f"no table under {heading!r} in {DOC}"
    return rows


def _qualified(name: str) -> str:
    return name if "." in name else f"public.{name}"


def ownership_map() -> OwnershipMap:
    doc = DOC.read_text()
    result = OwnershipMap()
    for cells in _rows(doc, "## Which domain owns which table"):
        assert len(cells) == 3, cells
        tables = re.findall(r"`([a-z_.]+)`", cells[0])
        owner = cells[1].split()[0]
        others = set() if cells[2] == "—" else {
            part.split(":")[0].strip() for part in cells[2].split(";")
        }
        assert tables and all(o.isidentifier() for o in others), cells
        for t in tables:
            result.owner[_qualified(t)] = owner
            result.column_owners[_qualified(t)] = others
    for cells in _rows(doc, "### Published read models"):
        (view,) = re.findall(r"`([a-z_.]+)`", cells[0])
        result.views[_qualified(view)] = cells[1]
    return result


# (not the FROM of IS DISTINCT FROM or extract(... FROM ...), nor FOR / DO UPDATE)
_RELATION = re.compile(
    r"(?<!DISTINCT )(?<!FOR )(?<!DO )(?<!epoch )\b(FROM|JOIN|UPDATE|INTO|TABLE)\s+"
    r"(?:ONLY\s+|IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"((?:public\.|hopsplane\.)?[A-Za-z_][A-Za-z_0-9]*)(\s*\()?",
    re.IGNORECASE,
)
# names a statement defines for itself: CTEs (`name AS (`) and temporary tables
_LOCAL = re.compile(
    r"(?:\b([a-z_][a-z_0-9]*)\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\("
    r"|CREATE\s+(?:TEMP|TEMPORARY|UNLOGGED)\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_]+))",
    re.IGNORECASE,
)
_NOT_RELATIONS = {"lateral", "select", "values", "stdin"}


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal but docstrings (prose, not SQL)."""
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.value for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def relations_of(source: str) -> set[str]:
    """Relations the module's SQL names (schema-qualified) and tables of imported models."""
    tree = ast.parse(source)
    strings = _strings(tree)
    sql = "\n".join(strings)
    local = {a or b for a, b in _LOCAL.findall(sql)}
    found: set[str] = set()
    for keyword, name, paren in _RELATION.findall(sql):
        bare = name.split(".")[-1]
        call = paren and keyword.upper() in ("FROM", "JOIN")  # FROM unnest(...)
        if call or bare.lower() in _NOT_RELATIONS or ("." not in name and bare in local):
            continue
        found.add(_qualified(name.lower()))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "hopsplane.db.models":
            for alias in node.names:
                model = getattr(models, alias.name)
                table = getattr(model, "__table__", None)
                if table is not None:
                    found.add(f"{table.schema or 'public'}.{table.name}")
    return found


def _domains() -> list[str]:
    return sorted({p.parent.name for p in SRC.glob("*/repository.py")}
                  | {p.parent.parent.name for p in SRC.glob("*/repository/__init__.py")})


def _repository_source(domain: str) -> str:
    """A domain's repository: its module, or every module of its package."""
    single = SRC / domain / "repository.py"
    if single.exists():
        return single.read_text()
    return "\n".join(p.read_text() for p in sorted((SRC / domain / "repository").glob("*.py")))


def _allowed(domain: str, relation: str, ownership: OwnershipMap) -> bool:
    return (
        ownership.owner.get(relation) == domain
        or domain in ownership.column_owners.get(relation, set())
        or relation in ownership.views
    )


@pytest.mark.parametrize("domain", _domains())
def test_a_repository_names_only_its_own_tables(domain: str) -> None:
    ownership = ownership_map()
    source = _repository_source(domain)
    relations = relations_of(source)
    unknown = {r for r in relations if r not in ownership.owner and r not in ownership.views}
    assert not unknown, f"{domain}/repository.py names relations not in the map: {unknown}"
    foreign = {r: ownership.owner[r] for r in relations if not _allowed(domain, r, ownership)}
    assert not foreign, (
        f"{domain}/repository.py touches tables of other domains {foreign}: go through the "
        "owner's service, or read a view it publishes (docs/architecture.md)"
    )


def test_the_guard_refuses_a_join_to_users_from_billing() -> None:
    """The check sees what a careless edit would add: billing reading users."""
    ownership = ownership_map()
    source = (SRC / "billing" / "repository.py").read_text()
    tampered = source + '\n\nX = text("SELECT u.email FROM users u WHERE u.id = :a")\n'
    assert "public.users" not in relations_of(source)
    assert "public.users" in relations_of(tampered)
    assert not _allowed("billing", "public.users", ownership)
    # f-strings, ORM models and writes are seen too
    assert "public.users" in relations_of('x = f"UPDATE users SET a = {b}"')
    assert "hopsplane.balance_events" in relations_of(
        'x = "INSERT INTO hopsplane.balance_events (id) VALUES (1)"')
    assert "public.users" in relations_of("from hopsplane.db.models import User")
    # a CTE or a function in FROM is not a table
    assert relations_of('x = "WITH users AS (SELECT 1) SELECT * FROM users"') == set()
    assert relations_of('x = "SELECT * FROM unnest(CAST(:a AS int[]))"') == set()


def test_every_table_and_view_of_the_database_is_in_the_map(session: Session) -> None:
    ownership = ownership_map()
    rows = session.execute(text(
        "SELECT table_schema || '.' || table_name, table_type FROM information_schema.tables "
        "WHERE table_schema IN ('public', 'hopsplane')"
    )).all()
    tables = {name for name, kind in rows if kind == "BASE TABLE"}
    views = {name for name, kind in rows if kind == "VIEW"}
    assert tables == set(ownership.owner), (
        f"missing from the map: {tables - set(ownership.owner)}; "
        f"not in the database: {set(ownership.owner) - tables}"
    )
    assert views == set(ownership.views)
    domains = set(_domains()) | {"db"}
    assert set(ownership.owner.values()) <= domains
    assert set(ownership.views.values()) <= domains
    for others in ownership.column_owners.values():
        assert others <= domains
