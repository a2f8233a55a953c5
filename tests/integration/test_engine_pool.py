"""The connection pool notices connections the server has closed, without a round trip."""

import time

import psycopg
from sqlalchemy import text

from hopsplane.db.engine import Database


def _backend_pid(db: Database) -> int:
    with db.transaction() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_the_server_terminated_is_replaced_before_use(fresh_db: Database) -> None:
    first = _backend_pid(fresh_db)
    assert _backend_pid(fresh_db) == first  # pooled: the same connection again
    admin_url = fresh_db.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
        # wait until the server has really closed it
        while admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,)
        ).fetchone():
            time.sleep(0.01)
    # the next transaction runs on a fresh connection instead of failing
    second = _backend_pid(fresh_db)
    assert second != first


def test_a_healthy_pooled_connection_is_kept(fresh_db: Database) -> None:
    pids = {_backend_pid(fresh_db) for _ in range(5)}
    assert len(pids) == 1
