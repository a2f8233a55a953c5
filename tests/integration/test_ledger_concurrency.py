"""Real threads racing on real PostgreSQL connections, each posting in its own transaction."""

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from hopsplane.credits import service
from hopsplane.credits.rules import EntryType
from hopsplane.credits.schemas import Posting
from hopsplane.db.engine import Database
from tests.factories import make_user

THREADS = 16


def _race(n_threads: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(n_threads)

    def run(i: int) -> None:
        barrier.wait()
        work(i)

    with ThreadPoolExecutor(n_threads) as pool:
        for f in [pool.submit(run, i) for i in range(n_threads)]:
            f.result()


def _grant(db: Database, account: str, amount: str, key: str) -> bool:
    with db.transaction() as s:
        return service.post(
            s, Posting(account, EntryType.GRANT, Decimal(amount), key)
        ).created


def test_sixteen_threads_on_one_account_keep_the_chain(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
    per_thread = 25

    def work(i: int) -> None:
        for j in range(per_thread):
            _grant(fresh_db, acct, f"{i + 1}.{j:02d}", f"t{i}-{j}")

    _race(THREADS, work)
    expected = sum(Decimal(f"{i + 1}.{j:02d}") for i in range(THREADS) for j in range(per_thread))
    with fresh_db.transaction() as s:
        report = service.verify(s)
        assert report.ok, report.breaks
        assert report.entries == THREADS * per_thread
        assert service.balance(s, acct) == expected
        seqs = [e.seq for e in service.history(s, acct, limit=500)]
    assert sorted(seqs) == list(range(1, THREADS * per_thread + 1))


def test_sixteen_threads_over_many_accounts(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        accounts = [make_user(s) for _ in range(8)]

    def work(i: int) -> None:
        for j in range(40):
            _grant(fresh_db, accounts[(i + j) % len(accounts)], "1.00", f"m{i}-{j}")

    _race(THREADS, work)
    with fresh_db.transaction() as s:
        assert service.verify(s).ok
        total = sum(service.balance(s, a) for a in accounts)
    assert total == Decimal(THREADS * 40)


def test_a_key_replayed_by_racing_threads_posts_exactly_once(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        acct = make_user(s)
    keys = [uuid.uuid4().hex for _ in range(30)]
    created: list[bool] = []
    lock = threading.Lock()

    def work(_i: int) -> None:
        for k in keys:  # every thread delivers every key
            was_created = _grant(fresh_db, acct, "2.50", k)
            with lock:
                created.append(was_created)

    _race(THREADS, work)
    assert created.count(True) == len(keys)
    with fresh_db.transaction() as s:
        assert service.balance(s, acct) == Decimal("2.50") * len(keys)
        assert service.verify(s).ok


def test_postings_to_different_accounts_do_not_wait_for_each_other(fresh_db: Database) -> None:
    """A transaction holding one account's lock must not block another account."""
    with fresh_db.transaction() as s:
        a, b = make_user(s), make_user(s)
    holder = fresh_db.sessions()
    holder.begin()
    service.post(holder, Posting(a, EntryType.GRANT, Decimal("1"), "hold-a"))
    try:
        done = threading.Event()

        def other() -> None:
            _grant(fresh_db, b, "1.00", "free-b")
            done.set()

        t = threading.Thread(target=other)
        t.start()
        assert done.wait(timeout=20), "posting to account b waited on account a's lock"
        t.join()
        # and the same account does wait: a second writer on `a` blocks until we commit
        blocked = threading.Event()

        def same() -> None:
            _grant(fresh_db, a, "1.00", "wait-a")
            blocked.set()

        t2 = threading.Thread(target=same)
        t2.start()
        assert not blocked.wait(timeout=1.0)
        holder.commit()
        assert blocked.wait(timeout=20)
        t2.join()
    finally:
        holder.close()
    with fresh_db.transaction() as s:
        assert service.balance(s, a) == Decimal("2.00")
        assert service.verify(s).ok
