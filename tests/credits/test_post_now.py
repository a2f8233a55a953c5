"""The one-round-trip posting: ``credits.service.post_now`` on a bare psycopg
connection posts, records the standing and commits in one pipeline, leaves no lock held
and no transaction open, and keeps the idempotency and refusals of ``post``."""

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from hopsplane.credits import service
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from hopsplane.errors import Conflict, Invalid, NotFound
from tests.factories import make_user


@pytest.fixture
def conn(fresh_db: Database) -> Iterator[psycopg.Connection]:
    url = fresh_db.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def _lock_is_free(conn: psycopg.Connection, account: str) -> bool:
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('credits_ledger:' || %s, 0))",
        (account,),
    ).fetchone()
    return bool(row and row[0])


def test_a_posting_commits_in_its_own_round_trip_and_releases_the_lock(
    fresh_db: Database, conn: psycopg.Connection
) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
    funded = service.post_now(conn, Posting(acct, EntryType.GRANT, Decimal("1.00"), "g1"))
    used = service.post_now(conn, Posting(acct, EntryType.USAGE, Decimal("-0.25"), "u1"))
    assert funded.created and used.created
    assert used.entry.balance == Decimal("0.75") and used.entry.seq == 2
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with psycopg.connect(conn.info.dsn, autocommit=True) as other:
        assert _lock_is_free(other, acct)
    with fresh_db.transaction() as s:  # committed: another transaction sees it
        assert service.balance(s, acct) == Decimal("0.75")
        assert service.verify(s, acct).ok


def test_a_replay_returns_the_original_and_a_reused_key_is_refused(
    fresh_db: Database, conn: psycopg.Connection
) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
    first = service.post_now(conn, Posting(acct, EntryType.GRANT, Decimal("2.00"), "k"))
    again = service.post_now(conn, Posting(acct, EntryType.GRANT, Decimal("2.00"), "k"))
    assert not again.created and again.entry.id == first.entry.id
    with pytest.raises(Conflict):
        service.post_now(conn, Posting(acct, EntryType.GRANT, Decimal("3.00"), "k"))
    with pytest.raises(Invalid):
        service.post_now(conn, Posting(acct, EntryType.REFUND, Decimal("-1.00"), "r",
                                       refund_of=first.entry.id))
    with pytest.raises(NotFound):
        service.post_now(conn, Posting("nobody", EntryType.GRANT, Decimal("1.00"), "n"))
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_crossing_zero_records_the_suspension_in_the_same_transaction(
    fresh_db: Database, conn: psycopg.Connection
) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
    service.post_now(conn, Posting(acct, EntryType.GRANT, Decimal("20.00"), "g"))
    result = service.post_now(conn, Posting(acct, EntryType.USAGE, Decimal("-25.00"), "u"))
    assert {e.kind for e in result.events} == {"low_balance", "suspended"}
    with fresh_db.transaction() as s:
        assert service.standing(s, acct).suspended
    # a refusal rolls the whole pipeline back and leaves the connection usable
    with pytest.raises(Conflict):
        service.post_now(conn, Posting(acct, EntryType.PURCHASE, Decimal("5.00"), "p",
                                       stripe_payment_intent_id="pi_1"))
        service.post_now(conn, Posting(acct, EntryType.PURCHASE, Decimal("5.00"), "p2",
                                       stripe_payment_intent_id="pi_1"))
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with fresh_db.transaction() as s:
        assert service.balance(s, acct) == Decimal("0.00")
