"""One notification path: every notice is a job queued by the transaction that caused it,
once per event, sent by the worker with no transaction open; delivery is at least once,
and a repeat carries the same Message-ID."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from hopsplane.credits import expiry
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.db.engine import Database
from hopsplane.integrations.email import Email
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.worker import service as queue
from tests.factories import job_context, make_user, notice_jobs, post

PUBLIC = "http://console.test"


def _kinds(db: Database, account: str) -> Counter[str]:
    return Counter(j.args["kind"] for j in notice_jobs(db) if j.args["account"] == account)


def _low(account: str, key: str = "1") -> AccountEvent:
    return AccountEvent("low_balance", account, f"low_balance:{account}:{key}",
                        {"threshold": Decimal("10.00"), "balance": Decimal("7.00"),
                         "ledger_seq": 1})


class _Recorder:
    """A mail server that accepts everything; ``crash_after`` sends, then fails the
    worker as a crash between the send and the job's commit would."""

    delivers = True

    def __init__(self, db: Database, crash_after: int = 0) -> None:
        self.db, self.crash_after = db, crash_after
        self.sent: list[Email] = []
        self.open_transactions: list[int] = []

    def send(self, message: Email) -> None:
        with self.db.engine.connect() as conn:  # who holds a transaction while we send?
            self.open_transactions.append(int(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )).scalar_one()))
        self.sent.append(message)
        if self.crash_after:
            self.crash_after -= 1
            raise RuntimeError("the worker died after the mail server accepted the message")


def _work(db: Database, mailer: Any, now: datetime | None = None) -> int:
    ctx = job_context(db, PUBLIC, mailer=mailer)
    ran = 0
    while queue.run_one(db, {notices.SEND_TASK: notices.send_notice}, ctx, now) is not None:
        ran += 1
    return ran


def test_each_balance_notice_is_queued_once_by_the_posting_that_causes_it(
    fresh_db: Database,
) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "grant", "12.00")
    assert _kinds(fresh_db, a) == Counter()
    with fresh_db.transaction() as s:
        post(s, a, "usage", "-5.00", key="u1")  # 7.00: under $10
    assert _kinds(fresh_db, a) == Counter({"low_balance": 1})
    with fresh_db.transaction() as s:
        post(s, a, "usage", "-5.00", key="u1")  # the same posting again: a replay
        post(s, a, "usage", "-7.50", key="u2")  # -0.50: the $0 notice and a suspension
    assert _kinds(fresh_db, a) == Counter({"low_balance": 2, "suspended": 1})
    with fresh_db.transaction() as s:
        post(s, a, "grant", "30.00")  # 29.50: back above every threshold
    assert _kinds(fresh_db, a) == Counter(
        {"low_balance": 2, "suspended": 1, "recovered": 1, "resumed": 1})
    keys = [j.args["key"] for j in notice_jobs(fresh_db)]
    assert len(keys) == len(set(keys))
    # the postings had no hooks: each change of suspension has its announcement job
    with fresh_db.transaction() as s:
        announce = [r[0] for r in s.execute(text(
            "SELECT args ->> 'kind' FROM hopsplane.jobs "
            "WHERE task = 'credits.announce_standing' ORDER BY id"))]
    assert announce == ["suspended", "resumed"]


def test_a_posting_with_hooks_announces_in_its_transaction_and_queues_no_announcement(
    fresh_db: Database,
) -> None:
    from tests.factories import RecordingHooks

    hooks = RecordingHooks()
    with fresh_db.transaction() as s:
        a = make_user(s)
        credits.grant(s, a, "1.00", reason="r", origin=OperatorGrant("h1"), hooks=hooks)
        credits.post(s, credits_posting(a, "-2.00", "h2"), hooks=hooks)
    assert hooks.events == [("account_suspended", a)]
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.jobs "
                              "WHERE task = 'credits.announce_standing'")).scalar_one() == 0
    assert _kinds(fresh_db, a)["suspended"] == 1


def credits_posting(account: str, amount: str, key: str) -> Any:
    from hopsplane.credits.rules import EntryType
    from hopsplane.credits.schemas import Posting

    return Posting(account, EntryType.USAGE, Decimal(amount), key)


def test_the_expiring_notice_is_queued_once_per_grant(fresh_db: Database) -> None:
    now = datetime.now(UTC)
    with fresh_db.transaction() as s:
        a = make_user(s)
        credits.grant(s, a, "4.00", reason="promo", origin=OperatorGrant("e1"),
                      expires_at=now + timedelta(days=5))
    for _ in range(3):  # the periodic job, again and again
        with fresh_db.transaction() as s:
            expiry.notify_expiring(s)
    assert _kinds(fresh_db, a)["credits_expiring"] == 1  # (and $4.00 is a low balance)
    [job] = [j for j in notice_jobs(fresh_db) if j.args["kind"] == "credits_expiring"]
    assert job.args["payload"]["amount"] == "4.00"  # money as text, never a float


def test_nothing_is_queued_when_the_causing_transaction_rolls_back(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "grant", "12.00")
    with pytest.raises(RuntimeError), fresh_db.transaction() as s:
        post(s, a, "usage", "-20.00")  # low, $0, suspended: three events...
        notices.publish(s, _low(a, "direct"))
        assert len(s.execute(text("SELECT id FROM hopsplane.jobs")).all()) >= 4
        raise RuntimeError("...and the transaction fails")
    assert notice_jobs(fresh_db) == []
    with fresh_db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.jobs")).scalar_one() == 0
        assert not credits.standing(s, a).suspended  # the state went back with them


def test_two_transactions_causing_the_same_event_queue_one_job(fresh_db: Database) -> None:
    """The second waits on the first's key, then finds it taken: one job, one send."""
    with fresh_db.transaction() as s:
        a = make_user(s)
    event = _low(a, "race")
    first_published = threading.Event()
    second_started = threading.Event()
    results: dict[str, int | None] = {}

    def second() -> None:
        first_published.wait(30)
        with fresh_db.transaction() as s:
            second_started.set()
            results["second"] = notices.publish(s, event)

    t = threading.Thread(target=second)
    t.start()
    with fresh_db.transaction() as s:
        results["first"] = notices.publish(s, event)
        first_published.set()
        second_started.wait(30)
        _wait_for_a_lock_wait(fresh_db)  # the second is blocked on the key we hold
    t.join(30)
    assert results["first"] is not None and results["second"] is None
    assert len(notice_jobs(fresh_db)) == 1
    mailer = _Recorder(fresh_db)
    assert _work(fresh_db, mailer) == 1 and len(mailer.sent) == 1


def _wait_for_a_lock_wait(db: Database) -> None:
    """Until another session of this database waits on a lock (bounded: 300 polls)."""
    import time

    for _ in range(300):
        with db.engine.connect() as conn:
            if conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("the second transaction never waited on the key")


def test_the_worker_sends_once_with_no_transaction_open(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        notices.publish(s, _low(a))
    mailer = _Recorder(fresh_db)
    assert _work(fresh_db, mailer) == 1
    assert [m.subject for m in mailer.sent] == ["hopsplane: your balance is at or below $10.00"]
    assert mailer.sent[0].to == f"{a[6:]}@example.com"
    assert f"{PUBLIC}/console" in mailer.sent[0].body
    assert mailer.open_transactions == [0]  # the job's transaction opens after the send
    assert _work(fresh_db, mailer, datetime.now(UTC) + timedelta(days=1)) == 0
    assert len(mailer.sent) == 1  # done: never sent again
    with fresh_db.transaction() as s:  # published again (a retried cause): still done
        assert notices.publish(s, _low(a)) is None
    assert _work(fresh_db, mailer) == 0


def test_a_crash_between_the_send_and_the_commit_sends_again_with_the_same_message_id(
    fresh_db: Database,
) -> None:
    """SMTP cannot join the job's transaction: at least once, deduplicable by the id."""
    with fresh_db.transaction() as s:
        a = make_user(s)
        notices.publish(s, _low(a))
    mailer = _Recorder(fresh_db, crash_after=1)
    _work(fresh_db, mailer)
    [job] = notice_jobs(fresh_db)
    assert job.status == "queued" and len(mailer.sent) == 1  # to be retried
    _work(fresh_db, mailer, datetime.now(UTC) + timedelta(hours=1))
    assert [j.status for j in notice_jobs(fresh_db)] == ["done"]
    first, again = mailer.sent
    assert first.message_id and first.message_id == again.message_id
    assert first.subject == again.subject


def test_a_mail_server_that_refuses_leaves_the_notice_queued(fresh_db: Database) -> None:
    from hopsplane.integrations.email import RefusingMailer

    with fresh_db.transaction() as s:
        a = make_user(s)
        notices.publish(s, _low(a))
    _work(fresh_db, RefusingMailer())
    [job] = notice_jobs(fresh_db)
    assert job.status == "queued"
    with fresh_db.transaction() as s:
        error = s.execute(text("SELECT last_error FROM hopsplane.jobs")).scalar_one()
    assert "HOPSPLANE_SMTP_HOST" in error


def test_an_unknown_kind_is_refused_before_anything_is_queued(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        with pytest.raises(ValueError, match="unknown account event kind"):
            notices.publish(s, AccountEvent("balance_lwo", a, "k"))
    assert notice_jobs(fresh_db) == []
