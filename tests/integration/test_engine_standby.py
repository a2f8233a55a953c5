"""A connection that finds itself on a server refusing writes (a primary demoted to standby
behind a proxy or a DNS name) is dropped, so that the next checkout finds the primary, and
the request sees "database unavailable" (503), not an internal error."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hopsplane.db.engine import Database, is_database_unavailable, libpq_conninfo


def _backend_pid(db: Database) -> int:
    with db.transaction() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_read_only_server_drops_the_connection_and_reads_as_unavailable(
    fresh_db: Database,
) -> None:
    with fresh_db.engine.connect() as conn:  # what a demoted primary does to every session
        conn.execute(text("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
        conn.commit()
    before = _backend_pid(fresh_db)
    with pytest.raises(DBAPIError) as caught, fresh_db.transaction() as s:
        s.execute(text("CREATE TEMPORARY TABLE refused (x int)"))
    assert caught.value.connection_invalidated
    assert is_database_unavailable(caught.value)
    assert _backend_pid(fresh_db) != before  # a new connection, which writes again
    with fresh_db.transaction() as s:
        s.execute(text("CREATE TEMPORARY TABLE accepted (x int)"))


def test_the_libpq_form_of_a_url_connects(fresh_db: Database) -> None:
    import psycopg

    with psycopg.connect(libpq_conninfo(fresh_db.url)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (
            fresh_db.engine.url.database,)
