"""Backup of the legacy tables: one CSV per table written with COPY, and a manifest.

The manifest (``manifest.json``) holds each table's row count, file size and SHA-256, and
the legacy DDL as read from the catalog (columns, defaults, constraints, indexes, owned
sequences), which is what ``hopsplane legacy restore`` rebuilds the tables from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, text

from hopsplane.errors import Conflict, Invalid
from hopsplane.legacy.inspect import row_counts

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class TableFile:
    file: str
    rows: int
    bytes: int
    sha256: str


def driver(conn: Connection) -> Any:
    """The psycopg connection under a SQLAlchemy one (same session, same transaction)."""
    return conn.connection.driver_connection


def capture_ddl(conn: Connection, schema: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """The tables' definitions from the catalog, unqualified (rebuildable in any schema)."""
    conn.execute(text(f'SET LOCAL search_path = "{schema}", pg_catalog'))
    out: dict[str, Any] = {}
    for table in tables:
        columns = [
            {"name": n, "type": t, "not_null": nn, "default": d}
            for n, t, nn, d in conn.execute(
                text(
                    """
                    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                           pg_get_expr(ad.adbin, ad.adrelid)
                    FROM pg_attribute a
                    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                    WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0
                      AND NOT a.attisdropped
                    ORDER BY a.attnum
                    """
                ),
                {"t": f'"{schema}"."{table}"'},
            )
        ]
        constraints = [
            {"name": n, "type": t, "definition": d}
            for n, t, d in conn.execute(
                text(
                    "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p','u','c','f') "
                    "ORDER BY contype = 'f', conname"
                ),
                {"t": f'"{schema}"."{table}"'},
            )
        ]
        indexes = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = CAST(:t AS regclass) AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                    "ORDER BY 1"
                ),
                {"t": f'"{schema}"."{table}"'},
            )
        ]
        sequences = [
            {"name": s, "column": col, "last_value": lv}
            for s, col, lv in conn.execute(
                text(
                    """
                    SELECT s.relname, a.attname, ps.last_value
                    FROM pg_depend dep
                    JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
                    JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
                    JOIN pg_sequences ps ON ps.schemaname = :s AND ps.sequencename = s.relname
                    WHERE dep.refobjid = CAST(:t AS regclass) AND dep.deptype IN ('a', 'i')
                    """
                ),
                {"t": f'"{schema}"."{table}"', "s": schema},
            )
        ]
        out[table] = {
            "columns": columns,
            "constraints": constraints,
            "indexes": indexes,
            "sequences": sequences,
        }
    conn.execute(text("SET LOCAL search_path = public, pg_catalog"))
    return out


def column_definitions(spec: dict[str, Any]) -> list[str]:
    """``"name" type [DEFAULT …] [NOT NULL]`` of each captured column of a table (for the
    manifest's readable DDL and for ``restore``'s CREATE TABLE alike)."""
    cols = []
    for c in spec["columns"]:
        col = f'"{c["name"]}" {c["type"]}'
        if c["default"] is not None:
            col += f" DEFAULT {c['default']}"
        if c["not_null"]:
            col += " NOT NULL"
        cols.append(col)
    return cols


def ddl_text(ddl: dict[str, Any]) -> str:
    """The captured DDL as readable SQL (stored in the manifest for humans)."""
    lines: list[str] = []
    for table, spec in ddl.items():
        for s in spec["sequences"]:
            lines.append(f'CREATE SEQUENCE "{s["name"]}";')
        cols = ",\n".join(f"  {c}" for c in column_definitions(spec))
        lines.append(f'CREATE TABLE "{table}" (\n{cols}\n);')
    for table, spec in ddl.items():
        for k in spec["constraints"]:
            lines.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{k["name"]}" {k["definition"]};')
        lines.extend(f"{i};" for i in spec["indexes"])
    return "\n".join(lines) + "\n"


def write_backup(
    conn: Connection, schema: str, tables: tuple[str, ...], directory: Path
) -> dict[str, Any]:
    """COPY every table to ``directory/<table>.csv`` and write the manifest (last, atomically:
    a directory without manifest.json is not a backup)."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    cur = driver(conn).cursor()
    files: dict[str, dict[str, Any]] = {}
    for table in tables:
        path = directory / f"{table}.csv"
        digest = hashlib.sha256()
        size = 0
        stmt = sql.SQL("COPY {}.{} TO STDOUT WITH (FORMAT csv, HEADER true)").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        with path.open("wb") as fh, cur.copy(stmt) as copy:
            # COPY OUT sends one message per row: gather rows into ~1 MB blocks so that
            # hashing and writing cost one call per block, not per row. The hash is taken
            # from the very bytes written, so the file need not be read back.
            block = bytearray()
            for chunk in copy:
                block += chunk
                if len(block) >= _CHUNK:
                    fh.write(block)
                    digest.update(block)
                    size += len(block)
                    block = bytearray()
            fh.write(block)
            digest.update(block)
            size += len(block)
            fh.flush()
            os.fsync(fh.fileno())
        files[table] = {
            "file": path.name, "rows": int(cur.rowcount), "bytes": size,
            "sha256": digest.hexdigest(),
        }
    ddl = capture_ddl(conn, schema, tables)
    info = conn.execute(
        text("SELECT current_database(), current_setting('server_version')")
    ).one()
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "database": info[0],
        "server_version": info[1],
        "tables": files,
        "ddl": ddl,
        "ddl_sql": ddl_text(ddl),
    }
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, manifest_path)
    return manifest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        raise Invalid(f"{directory} holds no backup ({MANIFEST} is missing)")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise Invalid(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise Invalid(f"{path} has an unknown format {manifest.get('format')!r}")
    return manifest


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Every file is present with the size and SHA-256 the manifest records."""
    problems = []
    for table, entry in manifest["tables"].items():
        path = directory / entry["file"]
        if not path.exists():
            problems.append(f"{table}: {path.name} is missing")
            continue
        if path.stat().st_size != entry["bytes"]:
            problems.append(f"{table}: {path.name} has {path.stat().st_size} bytes, "
                            f"the manifest says {entry['bytes']}")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{table}: {path.name} does not match its SHA-256")
    if problems:
        raise Conflict("the backup is damaged: " + "; ".join(problems))


def check_backup(conn: Connection, schema: str, directory: Path, manifest: dict[str, Any],
                 counts: dict[str, int] | None = None) -> None:
    """Before anything changes: the manifest on disk is the one just written, every file is
    there with the size written (its SHA-256 was computed from the very bytes written, so
    the file is not read again; ``restore`` re-hashes before using it), and each file holds
    as many rows as the table. ``counts``: the tables' row counts taken in the same
    transaction under the migration's locks (counted here when not given)."""
    if read_manifest(directory) != json.loads(json.dumps(manifest, default=str)):
        raise Conflict(f"the backup is damaged: {MANIFEST} is not the manifest just written")
    problems = []
    for table, entry in manifest["tables"].items():
        path = directory / entry["file"]
        if not path.exists():
            problems.append(f"{table}: {path.name} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{table}: {path.name} has {path.stat().st_size} bytes, "
                            f"{entry['bytes']} were written")
    if problems:
        raise Conflict("the backup is damaged: " + "; ".join(problems))
    if counts is None or not set(manifest["tables"]) <= set(counts):
        counts = row_counts(conn, schema, tuple(manifest["tables"]))
    wrong = [
        f"{t}: {counts[t]} rows in the table, {e['rows']} in the backup"
        for t, e in manifest["tables"].items() if counts[t] != e["rows"]
    ]
    if wrong:
        raise Conflict("the backup does not match the database: " + "; ".join(wrong))
