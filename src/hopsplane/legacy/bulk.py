"""Bulk loading into the freshly created (empty) new tables.

Inserting millions of rows into a table with its keys in place costs one foreign-key probe
and one b-tree insertion per row and key (random UUIDs make the latter cache-hostile).
Inside the migration transaction the keys are therefore dropped before the load and
re-created after it from their exact catalog definitions (same names, same SQL): building
an index from sorted data and validating a foreign key with one anti-join are each a single
pass. CHECK constraints stay in place during the load. If the data violates a key,
re-creating it fails and the whole transaction rolls back; ``hopsplane db check``
afterwards sees exactly the schema of the migrations.

Two row triggers do per row what one statement does for the whole load
(``triggers_disabled``: the caller runs that statement before the trigger is enabled
again, in the same transaction, so nobody ever sees the table without it), and
``packed`` loads a table whose fillfactor keeps free space for updates with full pages
(the rows written later still get the free space).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Key:
    table: str  # as regclass prints it: schema-qualified unless on the search path
    name: str
    kind: str  # 'p', 'u', 'f' (constraints) or 'i' (index without constraint)
    definition: str


def _keys(conn: Connection, tables: tuple[str, ...]) -> list[Key]:
    constraints = conn.execute(text(
        """
        SELECT k.conrelid::regclass::text, k.conname, k.contype, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        LEFT JOIN pg_class r ON r.oid = k.confrelid
        WHERE (c.relnamespace = 'public'::regnamespace AND c.relname = ANY(:t)
               AND k.contype IN ('p', 'u', 'f'))
           -- foreign keys of other (machinery) tables that point at the new tables: they
           -- hang on the keys dropped here, and their tables are as new and empty
           OR (k.contype = 'f' AND r.relnamespace = 'public'::regnamespace
               AND r.relname = ANY(:t))
        ORDER BY 1, k.conname
        """
    ), {"t": list(tables)})
    indexes = conn.execute(text(
        """
        SELECT c.relname, i.relname, 'i', pg_get_indexdef(x.indexrelid)
        FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(:t)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
                          AND k.conrelid = x.indrelid)
        ORDER BY c.relname, i.relname
        """
    ), {"t": list(tables)})
    return [Key(*r) for r in constraints] + [Key(*r) for r in indexes]


def drop_keys(conn: Connection, tables: tuple[str, ...]) -> list[Key]:
    """Drop the keys of ``tables`` (empty, freshly created); return them for create_keys."""
    keys = _keys(conn, tables)
    for k in sorted(keys, key=lambda k: {"f": 0, "i": 1, "u": 2, "p": 3}[k.kind]):
        if k.kind == "i":
            conn.execute(text(f'DROP INDEX public."{k.name}"'))
        else:
            conn.execute(text(f'ALTER TABLE {_qualified(k.table)} DROP CONSTRAINT "{k.name}"'))
    return keys


def create_keys(conn: Connection, keys: list[Key]) -> None:
    """Re-create what drop_keys dropped: unique keys and indexes first, foreign keys last
    (each validated in one pass; a violation raises and the transaction rolls back)."""
    for k in sorted(keys, key=lambda k: {"p": 0, "u": 1, "i": 2, "f": 3}[k.kind]):
        if k.kind == "i":
            conn.execute(text(k.definition))
        else:
            conn.execute(text(
                f'ALTER TABLE {_qualified(k.table)} ADD CONSTRAINT "{k.name}" {k.definition}'
            ))


def _qualified(table: str) -> str:
    """``hopsplane.jobs`` stays as it is; a bare name is a table in public."""
    return table if "." in table else f'public."{table}"'


@contextmanager
def triggers_disabled(conn: Connection, table: str, *triggers: str) -> Iterator[None]:
    """``ALTER TABLE public.<table> DISABLE TRIGGER`` for the block, enabled again after it
    (when the block raises, the transaction rolls back and the triggers were never off)."""
    for t in triggers:
        conn.execute(text(f'ALTER TABLE public."{table}" DISABLE TRIGGER "{t}"'))
    yield
    for t in triggers:
        conn.execute(text(f'ALTER TABLE public."{table}" ENABLE TRIGGER "{t}"'))


@contextmanager
def packed(conn: Connection, table: str) -> Iterator[None]:
    """Fill the pages written in the block completely, then restore the table's fillfactor
    (it applies to pages written from then on)."""
    before = conn.execute(text(
        "SELECT option_value FROM pg_class c, pg_options_to_table(c.reloptions) "
        "WHERE c.oid = CAST(:t AS regclass) AND option_name = 'fillfactor'"
    ), {"t": f'public."{table}"'}).scalar()
    conn.execute(text(f'ALTER TABLE public."{table}" SET (fillfactor = 100)'))
    yield
    if before is None:
        conn.execute(text(f'ALTER TABLE public."{table}" RESET (fillfactor)'))
    else:
        conn.execute(text(
            f'ALTER TABLE public."{table}" SET (fillfactor = {int(before)})'))
