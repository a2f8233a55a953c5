"""Member budgets: spend is the member's priced share (the same number the
usage pages show), the owner and the member are told at 80 % and 100 % once each, an
enforced budget stops the member through the hooks exactly once and lets them go again
in a new month, with a higher budget or with enforcement off; the API refuses what it must
and changes nothing then."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.billing import budgets
from hopsplane.billing import service as billing
from hopsplane.billing.run import run_billing
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid, NotFound
from hopsplane.notices import repository as notice_repo
from hopsplane.notices import rules as notice_rules
from hopsplane.notices.schemas import AccountEvent
from tests.apps import Api
from tests.factories import RecordingHooks, make_user, post, send_notices, upsert_usage

NOV = date(2026, 11, 1)


def _budget_events(hooks: RecordingHooks) -> list[tuple[str, ...]]:
    return [e for e in hooks.events if e[0].startswith("member_budget")]


def test_spend_is_the_members_priced_share_as_the_usage_report_shows_it(session: Session) -> None:
    owner = make_user(session)
    a, b = make_user(session, owner=owner), make_user(session, owner=owner)
    # odd units so that per-day rounding matters: 0.0001 per unit
    upsert_usage(session, owner, NOV, "33335", {a: "12345", b: "20990", "nobody": "0"})
    upsert_usage(session, owner, date(2026, 11, 2), "55", {a: "55"})
    upsert_usage(session, owner, date(2026, 10, 31), "99999", {a: "99999"})  # other month
    hooks = RecordingHooks()
    for m in (a, b):
        budgets.set_budget(session, owner, m, "100.00", enforce=False, hooks=hooks,
                           today=date(2026, 11, 15))
    shown = {x.member_id: x for x in budgets.budgets_of(session, owner, date(2026, 11, 15))}
    for m in (a, b):
        report = billing.usage_report(session, owner, NOV, date(2026, 11, 30), member_id=m)
        assert shown[m].spent == report.total_cost, m
    assert shown[a].spent == Decimal("1.24") and shown[b].spent == Decimal("2.10")
    assert shown[a].percent == 1 and shown[a].month == NOV


def test_notices_at_80_and_100_percent_once_each_for_owner_and_member(session: Session) -> None:
    owner = make_user(session)
    m = make_user(session, owner=owner)
    hooks = RecordingHooks()
    budgets.set_budget(session, owner, m, "10.00", enforce=False, hooks=hooks, today=NOV)
    upsert_usage(session, owner, NOV, "79999", {m: "79999"})  # 7.9999 -> 8.00: 80 %
    first = budgets.evaluate(session, hooks, NOV)
    assert first.notices == 1  # one event, told to the owner and to the member
    assert budgets.evaluate(session, hooks, NOV).notices == 0  # a repeat: nothing new
    upsert_usage(session, owner, NOV, "100000", {m: "100000"})  # 10.00: 100 %
    assert budgets.evaluate(session, hooks, NOV).notices == 1
    assert [(a["payload"]["percent"], a["payload"]["recipients"]) for a in _notices(session, m)
            ] == [(80, ["owner", "member"]), (100, ["owner", "member"])]
    assert _budget_events(hooks) == []  # not enforced: nobody is stopped
    # a higher budget re-arms the thresholds: 10.00 of 12.50 is 80 % of the new amount
    budgets.set_budget(session, owner, m, "12.50", enforce=False, hooks=hooks, today=NOV)
    assert [a["payload"]["budget"] for a in _notices(session, m)] == ["10.00", "10.00", "12.50"]

    events = [AccountEvent.from_args(a) for a in _notices(session, m)]
    people = notice_repo.people(session, [owner, m])
    sent = [e for ev in events
            for e in notice_rules.emails_for(ev, people, public_url="https://c.test")]
    assert len(sent) == 6
    to_owner = [e for e in sent if "has used 100%" in e.subject]
    to_member = [e for e in sent if "you have used 100%" in e.subject]
    assert len(to_owner) == len(to_member) == 1
    assert "$10.00 of $10.00 in November 2026" in to_owner[0].body
    assert "https://c.test/console/team" in to_owner[0].body
    assert "https://c.test/console/usage" in to_member[0].body
    assert to_member[0].html and "<strong>100%</strong>" in to_member[0].html


def test_an_enforced_budget_stops_once_and_lets_go_in_every_documented_way(
    session: Session,
) -> None:
    owner = make_user(session)
    m = make_user(session, owner=owner)
    hooks = RecordingHooks()
    stopped, restored = ("member_budget_exceeded", m, owner), ("member_budget_restored", m, owner)
    budgets.set_budget(session, owner, m, "5.00", enforce=True, hooks=hooks, today=NOV)
    upsert_usage(session, owner, NOV, "49999", {m: "49999"})  # 5.00 after rounding: reached
    budgets.evaluate(session, hooks, NOV)
    budgets.evaluate(session, hooks, NOV)  # a repeat stops nobody twice
    assert _budget_events(hooks) == [stopped]
    assert budgets.budgets_of(session, owner, NOV)[0].stopped

    budgets.set_budget(session, owner, m, "20.00", enforce=True, hooks=hooks, today=NOV)
    assert _budget_events(hooks) == [stopped, restored]  # raised above the spend: at once
    budgets.set_budget(session, owner, m, "4.00", enforce=True, hooks=hooks, today=NOV)
    assert _budget_events(hooks)[-1] == stopped  # lowered under it: at once
    budgets.set_budget(session, owner, m, "4.00", enforce=False, hooks=hooks, today=NOV)
    assert _budget_events(hooks)[-1] == restored  # enforcement off
    budgets.set_budget(session, owner, m, "4.00", enforce=True, hooks=hooks, today=NOV)
    assert _budget_events(hooks)[-1] == stopped
    budgets.evaluate(session, hooks, date(2026, 12, 1))  # a new month: nothing spent yet
    assert _budget_events(hooks)[-1] == restored
    assert len(_budget_events(hooks)) == 6
    budgets.evaluate(session, hooks, NOV)  # (November again, for the removal below)
    budgets.remove_budget(session, owner, m, hooks=hooks)
    assert _budget_events(hooks)[-2:] == [stopped, restored]
    assert budgets.budgets_of(session, owner, NOV) == []


def test_a_stopped_member_who_leaves_is_let_go_and_their_budget_dropped(session: Session) -> None:
    owner = make_user(session)
    m = make_user(session, owner=owner)
    hooks = RecordingHooks()
    budgets.set_budget(session, owner, m, "1.00", enforce=True, hooks=hooks, today=NOV)
    upsert_usage(session, owner, NOV, "20000", {m: "20000"})
    budgets.evaluate(session, hooks, NOV)
    session.execute(text("UPDATE users SET account_owner_id = NULL WHERE id = :m"), {"m": m})
    budgets.evaluate(session, hooks, NOV)
    assert _budget_events(hooks)[-1] == ("member_budget_restored", m, owner)
    assert session.execute(text("SELECT count(*) FROM hopsplane.member_budgets "
                                "WHERE member_id = :m"), {"m": m}).scalar_one() == 0


def test_only_members_of_the_account_get_budgets_and_bad_amounts_are_refused(
    session: Session,
) -> None:
    owner, other = make_user(session), make_user(session)
    m, stranger = make_user(session, owner=owner), make_user(session, owner=other)
    hooks = RecordingHooks()
    for who in (owner, stranger, "auth0|nobody"):
        with pytest.raises(NotFound):
            budgets.set_budget(session, owner, who, "5.00", enforce=True, hooks=hooks)
    for bad in ("0", "-1.00", "0.001", "abc", "", 1.5, "1e3"):
        with pytest.raises(Invalid):
            budgets.set_budget(session, owner, m, bad, enforce=True, hooks=hooks)
    budgets.remove_budget(session, owner, m, hooks=hooks)  # none to remove: nothing to do
    with pytest.raises(NotFound):
        budgets.remove_budget(session, owner, stranger, hooks=hooks)
    assert session.execute(text("SELECT count(*) FROM hopsplane.member_budgets "
                                "WHERE account_owner_id = :o"), {"o": owner}).scalar_one() == 0


def _notices(session: Session, member: str) -> list[dict[str, Any]]:
    """The queued budget notices about ``member`` (their jobs' arguments), oldest first."""
    return [r[0] for r in session.execute(text(
        "SELECT args FROM hopsplane.jobs WHERE task = 'notices.send' "
        "AND args ->> 'kind' = 'budget_reached' AND args -> 'payload' ->> 'member_id' = :m "
        "ORDER BY id"), {"m": member})]


def test_the_billing_run_evaluates_budgets_and_mails_both_people(api: Api) -> None:
    owner, _ = api.new_user()
    with api.db.transaction() as s:
        m = make_user(s, owner=owner)
        post(s, owner, "purchase", "100.00")
        budgets.set_budget(s, owner, m, "2.00", enforce=True, hooks=RecordingHooks(), today=NOV)
        upsert_usage(s, owner, NOV, "30000", {m: "25000", owner: "5000"})  # member: 2.50
    hooks = RecordingHooks()
    report = run_billing(api.db, NOV, hooks=hooks)
    assert report.budget_stops == 1 and _budget_events(hooks) == [
        ("member_budget_exceeded", m, owner)]
    send_notices(api.db, api.mailer)
    subjects = sorted(e.subject for e in api.mailer.sent if "budget" in e.subject)
    assert len(subjects) == 4  # 80 % and 100 %, to each of the two
    again = run_billing(api.db, NOV, hooks=hooks)
    assert again.budget_stops == 0 and len(_budget_events(hooks)) == 1
    send_notices(api.db, api.mailer)
    assert len([e for e in api.mailer.sent if "budget" in e.subject]) == 4


def test_the_api_sets_lists_and_removes_budgets_and_refuses_without_changing(api: Api) -> None:
    owner, headers = api.new_user()
    other, other_headers = api.new_user()
    with api.db.transaction() as s:
        m = make_user(s, owner=owner)
    put = api.client.put(f"/v1/account/budgets/{m}",
                         json={"monthly_budget": "50.00", "enforce": True}, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["monthly_budget"] == "50.00" and put.json()["stopped"] is False
    for body in ({"monthly_budget": "0"}, {"monthly_budget": "-5"}, {"monthly_budget": 1.5},
                 {"monthly_budget": "5", "extra": 1}, {}):
        r = api.client.put(f"/v1/account/budgets/{m}", json=body, headers=headers)
        assert r.status_code == 422 and r.json()["code"], (body, r.text)
    r = api.client.put(f"/v1/account/budgets/{m}", json={"monthly_budget": "9"},
                       headers=other_headers)  # another account's owner: as if unknown
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    listed = api.client.get("/v1/account/budgets", headers=headers).json()
    assert [(b["member_id"], b["monthly_budget"], b["enforce"]) for b in listed] == [
        (m, "50.00", True)]
    assert api.client.get("/v1/account/budgets", headers=other_headers).json() == []
    assert api.client.delete(f"/v1/account/budgets/{m}",
                             headers=other_headers).status_code == 404
    assert api.client.get("/v1/account/budgets", headers=headers).json() != []
    assert api.client.delete(f"/v1/account/budgets/{m}", headers=headers).status_code == 204
    assert api.client.delete(f"/v1/account/budgets/{m}", headers=headers).status_code == 204
    assert api.client.get("/v1/account/budgets", headers=headers).json() == []
    assert other


def test_concurrent_evaluations_stop_a_member_once_and_record_each_notice_once(
    fresh_db: Database,
) -> None:
    """Two billing runs' evaluations racing (each its own transaction): the budgets' row
    locks make the second see what the first did."""
    with fresh_db.transaction() as s:
        owner = make_user(s)
        m = make_user(s, owner=owner)
        budgets.set_budget(s, owner, m, "1.00", enforce=True, hooks=RecordingHooks(), today=NOV)
        upsert_usage(s, owner, NOV, "20000", {m: "20000"})
    hooks = RecordingHooks()
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        with fresh_db.transaction() as s:
            budgets.evaluate(s, hooks, NOV)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _budget_events(hooks) == [("member_budget_exceeded", m, owner)]
    with fresh_db.transaction() as s:
        assert len(_notices(s, m)) == 2  # 80 % and 100 %: once each, whatever the races
