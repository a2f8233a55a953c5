"""The "back above the threshold" notice: published by the same statement as
low-balance notices, once per crossing, only after a low-balance notice, queued after it
and sent by the worker, never twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from hopsplane.billing.run import run_billing
from hopsplane.credits.schemas import PostResult
from hopsplane.db.engine import Database
from hopsplane.errors import Unavailable
from hopsplane.integrations.email import Email
from hopsplane.notices import service as notices
from hopsplane.worker import service as queue
from tests.apps import Api
from tests.factories import (
    RecordingHooks,
    job_context,
    make_user,
    notice_jobs,
    post,
    send_notices,
    upsert_usage,
)

PUBLIC = "http://console.test"


def _kinds(result: PostResult) -> list[tuple[str, Decimal | None]]:
    return sorted(((e.kind, e.threshold) for e in result.events), key=str)


def test_a_recovery_is_recorded_once_per_crossing_and_only_after_a_low_balance_notice(
    session: Session,
) -> None:
    a = make_user(session)
    assert _kinds(post(session, a, "grant", "50.00")) == []  # never low: nothing to close
    assert _kinds(post(session, a, "grant", "5.00")) == []
    assert _kinds(post(session, a, "usage", "-48.00")) == [("low_balance", Decimal("10.00"))]
    assert _kinds(post(session, a, "grant", "2.00")) == []  # 9.00: still under 10
    assert _kinds(post(session, a, "grant", "20.00")) == [("recovered", Decimal("10.00"))]
    assert _kinds(post(session, a, "grant", "20.00")) == []  # already above: no repeat
    # down through every threshold to a suspension, then straight back above all of them
    assert _kinds(post(session, a, "usage", "-60.00")) == [
        ("low_balance", Decimal("0.00")), ("suspended", None)]
    assert _kinds(post(session, a, "grant", "100.00")) == [
        ("recovered", Decimal("10.00")), ("resumed", None)]
    # a rise that stays under the highest threshold closes nothing yet
    assert _kinds(post(session, a, "usage", "-88.50")) == [
        ("low_balance", Decimal("1.00"))]
    assert _kinds(post(session, a, "grant", "5.00")) == []
    assert _kinds(post(session, a, "grant", "5.00")) == [("recovered", Decimal("10.00"))]


class _FlakyMailer:
    """Refuses the first ``failures`` messages (SMTP down), then records what it sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[Email] = []

    def send(self, message: Email) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("SMTP is down")
        self.sent.append(message)


def test_the_recovery_is_queued_after_its_low_balance_notice_and_each_is_sent_once(
    fresh_db: Database,
) -> None:
    """Both notices are jobs queued by their postings, in that order; a mail server that
    refuses one fails its job, the queue retries it later, and nothing is sent twice."""
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "grant", "12.00")
        post(s, a, "usage", "-5.00")   # low balance (7.00)
        post(s, a, "grant", "30.00")   # recovered (37.00)
    assert [j.args["kind"] for j in notice_jobs(fresh_db)] == ["low_balance", "recovered"]
    mailer = _FlakyMailer(failures=1)
    ctx = job_context(fresh_db, PUBLIC, mailer=mailer)
    handlers = {notices.SEND_TASK: notices.send_notice}
    now = datetime.now(UTC)
    while queue.run_one(fresh_db, handlers, ctx, now) is not None:
        pass
    assert [m.subject for m in mailer.sent] == ["hopsplane: your balance is back above $10.00"]
    later = now + timedelta(days=1)  # past the failed job's backoff
    while queue.run_one(fresh_db, handlers, ctx, later) is not None:
        pass
    subjects = sorted(m.subject for m in mailer.sent)
    assert subjects == ["hopsplane: your balance is at or below $10.00",
                        "hopsplane: your balance is back above $10.00"]
    recovered = next(m for m in mailer.sent if "back above" in m.subject)
    assert "back above $10.00: it is now $37.00" in recovered.body
    assert "<strong>$37.00</strong>" in (recovered.html or "")
    assert f"{PUBLIC}/console" in recovered.body
    assert queue.run_one(fresh_db, handlers, ctx, later + timedelta(days=1)) is None
    assert len(mailer.sent) == 2  # done jobs are never sent again
    assert {j.status for j in notice_jobs(fresh_db)} == {"done"}


def test_the_recovery_after_a_top_up_is_sent_by_the_worker(web: Api) -> None:
    owner, _headers = web.new_user()
    with web.db.transaction() as s:
        post(s, owner, "purchase", "12.00")
        upsert_usage(s, owner, date(2026, 11, 20), "50000")  # 5.00 -> 7.00
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    with web.db.transaction() as s:
        post(s, owner, "purchase", "20.00")  # 27.00: the recovery is queued with it
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    subjects = [m.subject for m in web.mailer.sent if "balance" in m.subject]
    assert subjects == ["hopsplane: your balance is at or below $10.00",
                        "hopsplane: your balance is back above $10.00"]
