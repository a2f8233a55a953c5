"""Revision 0023 on a database built by revision 0020 with a year of history:
every draw recorded so far stays, every credit keeps what is left of it, and what is posted
after the upgrade is drawn exactly as 0020's trigger would have drawn it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from hopsplane.credits import service
from hopsplane.db import migrate
from hopsplane.db.engine import Database
from tests.pg import PgServer

T0 = datetime(2029, 1, 1, tzinfo=UTC)
ACCOUNTS = ("acct-a", "acct-b", "acct-c")

_POST = ("SELECT entry_id FROM hopsplane.post_next_entry(%s, %s, %s, NULL, %s, %s, %s, "
         "%s, %s, NULL, %s)")


def _post(conn: psycopg.Connection[Any], account: str, amount: str, kind: str, key: str,
          at: datetime, *, intent: str | None = None, refund_of: Any = None,
          expires: datetime | None = None, refers_to: Any = None) -> Any:
    row = conn.execute(_POST, (account, Decimal(amount), kind, intent, key, refund_of,
                               expires, refers_to, at)).fetchone()
    assert row is not None and row[0] is not None
    return row[0]


def _expire(conn: psycopg.Connection[Any], account: str, at: datetime) -> None:
    """What the expiry job does: remove what is left of each expired grant (after 0023,
    once the account's draws are caught up)."""
    lazy = conn.execute("SELECT to_regprocedure('hopsplane.burn_down(text)')").fetchone()
    if lazy is not None and lazy[0] is not None:
        conn.execute("SELECT hopsplane.burn_down(%s)", (account,))
    rows = conn.execute(
        "SELECT l.id, o.open FROM credits_ledger l JOIN hopsplane.credit_lots o "
        "ON o.entry_id = l.id WHERE l.account_owner_id = %s AND l.expires_at <= %s "
        "AND o.open > 0 ORDER BY l.seq", (account, at)).fetchall()
    for grant_id, left in rows:
        _post(conn, account, str(-left), "expiry", f"expiry:{grant_id}", at,
              refers_to=grant_id)


def _year(conn: psycopg.Connection[Any], days: range) -> None:
    """Daily usage, a monthly promotional grant that expires after 40 days, a purchase
    every quarter, a refund, a dispute and an overdraft or two."""
    for day in days:
        at = T0 + timedelta(days=day)
        for i, account in enumerate(ACCOUNTS):
            if day % 30 == 0:
                _post(conn, account, "20.00", "grant", f"{account}:g{day}", at,
                      expires=at + timedelta(days=40))
            if day % 91 == 5 and i != 2:  # account c lives on grants and overdraws
                purchase = _post(conn, account, "50.00", "purchase", f"{account}:p{day}", at,
                                 intent=f"pi_{account}_{day}")
                if day == 96:
                    _post(conn, account, "-10.00", "refund", f"{account}:r{day}",
                          at + timedelta(hours=1), intent=f"pi_{account}_{day}",
                          refund_of=purchase)
            amount = Decimal(37 + 13 * i + (day * 7) % 50) / 100
            _post(conn, account, str(-amount), "usage", f"{account}:u{day}",
                  at + timedelta(hours=12))
            _expire(conn, account, at + timedelta(hours=18))


def _draws_by_key(conn: psycopg.Connection[Any]) -> set[tuple[str, str, Decimal]]:
    rows = conn.execute(
        # an expiry's key names its grant's id, which differs between two databases
        "SELECT COALESCE('expiry of ' || g.idempotency_key, b.idempotency_key), "
        "c.idempotency_key, d.amount FROM hopsplane.credit_draws d "
        "JOIN credits_ledger b ON b.id = d.debit_entry_id "
        "LEFT JOIN credits_ledger g ON g.id = b.refers_to AND b.type = 'expiry' "
        "JOIN credits_ledger c ON c.id = d.credit_entry_id").fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def _credits_left(conn: psycopg.Connection[Any]) -> dict[str, Decimal]:
    rows = conn.execute(
        "SELECT l.idempotency_key, o.open FROM hopsplane.credit_lots o "
        "JOIN credits_ledger l ON l.id = o.entry_id WHERE o.is_credit").fetchall()
    return {r[0]: r[1] for r in rows}


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True)


def _build(pg: PgServer) -> str:
    url = pg.empty_database()
    migrate.upgrade(url, "0020")
    with _connect(url) as conn:
        for account in ACCOUNTS:
            conn.execute("INSERT INTO users (id, email) VALUES (%s, %s)",
                         (account, f"{account}@example.com"))
        _year(conn, range(0, 365))
    return url


@pytest.mark.slow
def test_upgrading_a_year_of_history_keeps_every_draw_and_draws_the_rest_the_same(
    pg: PgServer,
) -> None:
    eager_url, lazy_url = _build(pg), _build(pg)
    with _connect(lazy_url) as conn:
        before_draws, before_left = _draws_by_key(conn), _credits_left(conn)
    assert len(before_draws) > 1000  # a draw or two for (nearly) every debit of the year

    migrate.upgrade(lazy_url)
    with _connect(lazy_url) as conn:
        assert _draws_by_key(conn) == before_draws  # every draw recorded so far
        assert _credits_left(conn) == before_left
        behind = conn.execute(
            "SELECT count(*) FROM (SELECT account_owner_id, max(seq) AS head "
            "FROM credits_ledger GROUP BY 1) h JOIN hopsplane.credit_checkpoints c "
            "USING (account_owner_id) WHERE c.seq <> h.head").fetchone()
        assert behind == (0,)
    db = Database(lazy_url)
    try:
        with db.transaction() as s:
            report = service.verify(s)
            assert report.ok, report.breaks

        # the next months: posted eagerly by 0020 on one copy, lazily on the other
        with _connect(eager_url) as conn:
            _year(conn, range(365, 450))
            eager_draws, eager_left = _draws_by_key(conn), _credits_left(conn)
        with _connect(lazy_url) as conn:
            _year(conn, range(365, 450))
        with db.transaction() as s:
            service.catch_up(s, list(ACCOUNTS))
        with db.transaction() as s:
            for account in ACCOUNTS:
                report = service.verify(s, account)
                assert report.ok, report.breaks
        with _connect(lazy_url) as conn:
            assert _draws_by_key(conn) == eager_draws
            assert _credits_left(conn) == eager_left
    finally:
        db.dispose()
