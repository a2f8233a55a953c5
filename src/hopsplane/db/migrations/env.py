"""Alembic environment. Run through ``hopsplane db ...`` (see hopsplane.db.migrate), which
passes the database URL in the config's attributes; nothing is read from alembic.ini."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool, text

from hopsplane.db.models import MACHINERY_SCHEMA, Base

config = context.config
target_metadata = Base.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Only public (the six tables) and our machinery schema are ours; legacy tables that a
    # cleanup kept in legacy_archive, or anything else on the server, are not.
    if type_ == "table":
        schema = getattr(obj, "schema", None)
        if schema not in (None, "public", MACHINERY_SCHEMA):
            return False
        if reflected and compare_to is None:
            # A table that exists in the database but not in the models: only report it
            # when it lives in a schema the models own.
            return name != "alembic_version"
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("no database URL given to the migrations")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: Any) -> None:
    # A caller that hands us a connection already inside a transaction (the legacy cleanup
    # runs the upgrade in the middle of its own) owns that transaction: nothing here may
    # commit behind its back, and alembic itself does not commit an external transaction.
    external = connection.in_transaction()
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {MACHINERY_SCHEMA}"))
    if not external:
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=MACHINERY_SCHEMA,
        include_schemas=True,
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        # Serialise concurrent upgrades (two `hopsplane serve` starting at once).
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('hopsplane:migrations'))"))
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `hopsplane db upgrade`")
run_migrations_online()
