"""The way back: the legacy tables from a backup, into an empty database (or, for
``hopsplane legacy verify``, into a scratch schema inside a transaction that is rolled back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, text

from hopsplane.errors import Conflict
from hopsplane.legacy.backup import check_files, column_definitions, driver, read_manifest
from hopsplane.legacy.inspect import q, row_counts, tables_in

_CHUNK = 1 << 20


def create_tables(conn: Connection, schema: str, ddl: dict[str, Any]) -> None:
    """Sequences and columns (with defaults); constraints come after the data."""
    conn.execute(text(f'SET LOCAL search_path = "{schema}", pg_catalog'))
    for spec in ddl.values():
        for s in spec["sequences"]:
            conn.execute(text(f'CREATE SEQUENCE "{schema}"."{s["name"]}"'))
    for table, spec in ddl.items():
        cols = ", ".join(column_definitions(spec))
        conn.execute(text(f"CREATE TABLE {q(schema, table)} ({cols})"))


def load_data(conn: Connection, schema: str, directory: Path, manifest: dict[str, Any]) -> None:
    cur = driver(conn).cursor()
    for table, entry in manifest["tables"].items():
        stmt = sql.SQL("COPY {}.{} FROM STDIN WITH (FORMAT csv, HEADER true)").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        with (directory / entry["file"]).open("rb") as fh, cur.copy(stmt) as copy:
            while chunk := fh.read(_CHUNK):
                copy.write(chunk)


def add_constraints(conn: Connection, schema: str, ddl: dict[str, Any]) -> None:
    conn.execute(text(f'SET LOCAL search_path = "{schema}", pg_catalog'))
    for want_fk in (False, True):
        for table, spec in ddl.items():
            for k in spec["constraints"]:
                if (k["type"] == "f") == want_fk:
                    conn.execute(text(
                        f'ALTER TABLE {q(schema, table)} ADD CONSTRAINT "{k["name"]}" '
                        f"{k['definition']}"
                    ))
    for table, spec in ddl.items():
        for index in spec["indexes"]:
            conn.execute(text(index))
        for s in spec["sequences"]:
            conn.execute(text(
                f'ALTER SEQUENCE "{schema}"."{s["name"]}" '
                f'OWNED BY {q(schema, table)}."{s["column"]}"'
            ))
            if s["last_value"] is not None:
                conn.execute(text("SELECT setval(CAST(:seq AS regclass), :v)"),
                             {"seq": f'"{schema}"."{s["name"]}"', "v": int(s["last_value"])})
    conn.execute(text("SET LOCAL search_path = public, pg_catalog"))


def check_counts(conn: Connection, schema: str, manifest: dict[str, Any]) -> None:
    counts = row_counts(conn, schema, tuple(manifest["tables"]))
    wrong = [f"{t}: {counts[t]} loaded, {e['rows']} in the manifest"
             for t, e in manifest["tables"].items() if counts[t] != e["rows"]]
    if wrong:
        raise Conflict("the restored tables do not match the manifest: " + "; ".join(wrong))


def load_backup(conn: Connection, schema: str, directory: Path,
                *, constraints: bool) -> dict[str, Any]:
    """Check the backup, then rebuild its tables in ``schema`` (inside the caller's
    transaction) and check the row counts."""
    manifest = read_manifest(directory)
    check_files(directory, manifest)
    create_tables(conn, schema, manifest["ddl"])
    load_data(conn, schema, directory, manifest)
    if constraints:
        add_constraints(conn, schema, manifest["ddl"])
    conn.execute(text("SET LOCAL search_path = public, pg_catalog"))
    check_counts(conn, schema, manifest)
    return manifest


def restore_into_public(conn: Connection, directory: Path) -> dict[str, Any]:
    """Restore into ``public`` of an empty database (refuses when public holds tables)."""
    present = tables_in(conn, "public")
    if present:
        raise Conflict(
            "restore needs an empty database; public holds "
            + ", ".join(sorted(present)[:10]) + ("…" if len(present) > 10 else "")
        )
    return load_backup(conn, "public", directory, constraints=True)
