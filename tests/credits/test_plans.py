"""Plans that cannot go quadratic: on a database whose statistics were never
taken (autovacuum off, no ANALYZE), the work of one posting and of drawing a hundred entries
of one account does not grow with the account's history: counted in buffers touched
(EXPLAIN (ANALYZE, BUFFERS)), never in time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from hopsplane.credits import service
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from tests.factories import make_user

_POST = ("hopsplane.post_next_entry(%s, -0.01, 'usage', NULL, NULL, %s, NULL)")


def _buffers(conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]) -> int:
    row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
                       params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def _measure(conn: psycopg.Connection[Any], acct: str, tag: str) -> tuple[int, int]:
    """(buffers of one usage posting, buffers of drawing 100 entries) at the account's
    current length."""
    conn.execute("SELECT hopsplane.burn_down(%s)", (acct,))
    n = 0
    while True:  # stay clear of the multiples of 256, where a posting draws the backlog
        head = conn.execute("SELECT max(seq) FROM credits_ledger WHERE account_owner_id = %s",
                            (acct,)).fetchone()
        if head is not None and head[0] % 256 == 1:
            break
        conn.execute(f"SELECT * FROM {_POST}", (acct, f"{tag}:pad{n}"))
        n += 1
    conn.execute("SELECT hopsplane.burn_down(%s)", (acct,))
    posting = _buffers(conn, f"SELECT * FROM {_POST}", (acct, f"{tag}:measured"))
    for i in range(99):
        conn.execute(f"SELECT * FROM {_POST}", (acct, f"{tag}:{i}"))
    drawing = _buffers(conn, "SELECT hopsplane.burn_down(%s)", (acct,))
    return posting, drawing


@pytest.mark.slow
def test_one_account_with_20000_debits_and_no_statistics_costs_what_a_short_one_does(
    fresh_db: Database,
) -> None:
    url = fresh_db.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("credits_ledger", "hopsplane.credit_lots", "hopsplane.credit_draws",
                      "hopsplane.credit_checkpoints", "users"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        analyzed = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
            "('credits_ledger', 'credit_lots', 'credit_draws') AND (last_analyze IS NOT NULL "
            "OR last_autoanalyze IS NOT NULL)").fetchone()
        assert analyzed == (0,)
    with fresh_db.transaction() as s:
        acct = make_user(s)
        now = datetime.now(UTC)
        service.post(s, Posting(acct, EntryType.PURCHASE, Decimal("100000.00"), "paid"))
        service.grant(s, acct, "50.00", reason="promo", origin=_origin("promo"),
                      expires_at=now + timedelta(days=3000), now=now)
    with psycopg.connect(url, autocommit=True) as conn:
        short = _measure(conn, acct, "short")
    for batch in range(20):
        with fresh_db.transaction() as s:
            service.post_many(s, [
                Posting(acct, EntryType.USAGE, Decimal("-0.01"), f"load:{batch}:{i}")
                for i in range(1000)])
    with psycopg.connect(url, autocommit=True) as conn:
        length = conn.execute("SELECT count(*) FROM credits_ledger WHERE account_owner_id = %s",
                              (acct,)).fetchone()
        assert length is not None and length[0] > 20000
        long = _measure(conn, acct, "long")
    # an index descent is a few pages deeper at 20,000 entries; a scan would be hundreds
    assert long[0] <= short[0] * 1.5 + 10, (short, long)
    assert long[1] <= short[1] * 1.5 + 30, (short, long)
    with fresh_db.transaction() as s:
        assert service.verify(s, acct).ok


def _origin(key: str) -> Any:
    from hopsplane.credits.origins import OperatorGrant

    return OperatorGrant(key)
