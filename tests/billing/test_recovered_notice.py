"""The "back above the threshold" notice: written by the same statement as
low-balance notices, once per crossing, only after a low-balance notice, and sent by the
dispatcher after that notice (never before it, never twice)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.billing import service as billing
from hopsplane.billing.run import run_billing
from hopsplane.credits.schemas import PostResult
from hopsplane.errors import Unavailable
from hopsplane.integrations.email import Email
from tests.apps import Api
from tests.factories import RecordingHooks, make_user, post, upsert_usage


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


def test_the_recovery_waits_for_its_low_balance_notice_and_is_sent_once(
    session: Session,
) -> None:
    a = make_user(session)
    post(session, a, "grant", "12.00")
    post(session, a, "usage", "-5.00")   # low balance (7.00)
    post(session, a, "grant", "30.00")   # recovered (37.00)
    mailer = _FlakyMailer(failures=1)
    hooks = RecordingHooks()
    billing.dispatch_events(session, hooks, mailer, public_url="http://console.test")
    assert mailer.sent == []  # the low-balance notice failed, so the recovery waited
    billing.dispatch_events(session, hooks, mailer, public_url="http://console.test")
    subjects = [m.subject for m in mailer.sent]
    assert subjects == ["hopsplane: your balance is at or below $10.00",
                        "hopsplane: your balance is back above $10.00"]
    recovered = mailer.sent[1]
    assert "back above $10.00: it is now $37.00" in recovered.body
    assert "<strong>$37.00</strong>" in (recovered.html or "")
    assert "http://console.test/console" in recovered.body
    billing.dispatch_events(session, hooks, mailer, public_url="http://console.test")
    assert len(mailer.sent) == 2  # a retry sends nothing again
    pending = session.execute(text(
        "SELECT count(*) FROM hopsplane.balance_events WHERE account_owner_id = :a "
        "AND dispatched_at IS NULL"), {"a": a}).scalar_one()
    assert pending == 0


def test_a_billing_run_sends_the_recovery_after_a_top_up(web: Api) -> None:
    owner, _headers = web.new_user()
    with web.db.transaction() as s:
        post(s, owner, "purchase", "12.00")
        upsert_usage(s, owner, date(2026, 11, 20), "50000")  # 5.00 -> 7.00
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks(), mailer=web.mailer)
    with web.db.transaction() as s:
        post(s, owner, "purchase", "20.00")  # 27.00: the event waits for the dispatcher
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks(), mailer=web.mailer)
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks(), mailer=web.mailer)
    subjects = [m.subject for m in web.mailer.sent if "balance" in m.subject]
    assert subjects == ["hopsplane: your balance is at or below $10.00",
                        "hopsplane: your balance is back above $10.00"]
