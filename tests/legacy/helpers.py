"""Steps of the legacy tests: run a migration, compare databases, run SQL on one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from hopsplane.crypto import SecretBox
from hopsplane.legacy import service
from hopsplane.legacy.inspect import tables_in


def snapshot(url: str, schema: str = "public") -> dict[str, list[str]]:
    """Every table of ``schema`` as its sorted rows (text form): equal snapshots mean equal
    contents."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: sorted(r[0] for r in conn.execute(text(f'SELECT x::text FROM "{schema}"."{t}" x')))
                for t in sorted(tables_in(conn, schema))
            }
    finally:
        engine.dispose()


def run_migrate(url: str, backup_dir: Path, box: SecretBox, **kw: Any) -> service.MigrationReport:
    with service.connect(url) as conn, conn.begin():
        return service.migrate(conn, backup_dir, box, **kw)


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.execute(text(s))
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()
