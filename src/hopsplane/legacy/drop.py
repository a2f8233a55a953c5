"""Removing the staged legacy tables: in dependency order, never a blind CASCADE.

With --keep-legacy the twelve retired tables move to ``legacy_archive`` instead; their
foreign keys to the five migrated tables (which are dropped) are removed by name first,
and the report lists them.
"""

from __future__ import annotations

from graphlib import TopologicalSorter

from sqlalchemy import Connection, text

from hopsplane.errors import Conflict
from hopsplane.legacy.ddl import ARCHIVE_SCHEMA, MIGRATED, RETIRED
from hopsplane.legacy.inspect import q, tables_in


def foreign_keys(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    """(table, constraint, referenced table) for foreign keys between tables of ``schema``."""
    rows = conn.execute(text(
        """
        SELECT c.relname, k.conname, r.relname
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_class r ON r.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = :s AND r.relnamespace = n.oid
        ORDER BY 1, 2
        """
    ), {"s": schema})
    return [(t, k, r) for t, k, r in rows]


def dependency_order(conn: Connection, schema: str, tables: tuple[str, ...]) -> list[str]:
    """``tables`` ordered so that every table comes before the tables it references."""
    graph: dict[str, set[str]] = {t: set() for t in tables}
    for table, _, referenced in foreign_keys(conn, schema):
        if table in graph and referenced in graph and referenced != table:
            # referenced can be dropped only after table: it "depends on" table going first
            graph[referenced].add(table)
    return list(TopologicalSorter(graph).static_order())


def retire(conn: Connection, staging: str, *, keep_legacy: bool) -> list[str]:
    """Drop (or archive) every staged table, then the staging schema. Returns what was done."""
    done: list[str] = []
    to_drop: tuple[str, ...] = MIGRATED + RETIRED
    if keep_legacy:
        clash = tables_in(conn, ARCHIVE_SCHEMA) & set(RETIRED)
        if clash:
            raise Conflict(
                f"{ARCHIVE_SCHEMA} already holds {', '.join(sorted(clash))}: move them away first"
            )
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{ARCHIVE_SCHEMA}"'))
        for table, constraint, referenced in foreign_keys(conn, staging):
            if table in RETIRED and referenced in MIGRATED:
                conn.execute(
                    text(f'ALTER TABLE {q(staging, table)} DROP CONSTRAINT "{constraint}"'))
                done.append(f"dropped foreign key {table}.{constraint} (to {referenced})")
        for table in RETIRED:
            conn.execute(text(f'ALTER TABLE {q(staging, table)} SET SCHEMA "{ARCHIVE_SCHEMA}"'))
            done.append(f"archived {table} in {ARCHIVE_SCHEMA}")
        to_drop = MIGRATED
    for table in dependency_order(conn, staging, to_drop):
        conn.execute(text(f"DROP TABLE {q(staging, table)}"))
        done.append(f"dropped {table}")
    conn.execute(text(f'DROP SCHEMA "{staging}"'))
    return done
