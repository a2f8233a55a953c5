"""CSV exports of usage and ledger: the console's and the API's are the same bytes, their
numbers are the JSON routes' numbers (exact decimals), a member gets only their share, and
a bad range is refused before anything is sent, and a failure is a 503, never a short file."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from hopsplane.billing import service as billing_service
from hopsplane.billing.rules import NOBODY_LABEL
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant
from hopsplane.credits.rules import EntryType
from hopsplane.http import exports
from tests.apps import Api
from tests.factories import post, upsert_usage


def rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


def test_usage_csv_matches_the_api_and_the_console(web: Api) -> None:
    owner, headers = web.new_user()
    member, member_headers = web.new_user()
    first = date(2026, 1, 1)
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
        for n in range(0, 70, 3):  # more than one 31-day chunk
            upsert_usage(s, owner, first + timedelta(days=n), "12345.6789",
                         {owner: "10000.0001", member: "2345.6787", "auth0|gone": "0.0001"})
    query = {"from": "2026-01-01", "to": "2026-03-31"}
    api = web.client.get("/v1/account/usage.csv", params=query, headers=headers)
    assert api.status_code == 200 and api.headers["content-type"].startswith("text/csv")
    assert "attachment" in api.headers["content-disposition"]
    console = web.client.get("/console/usage.csv", params=query, headers=headers)
    assert console.status_code == 200 and console.text == api.text
    report = web.client.get("/v1/account/usage", params=query, headers=headers).json()
    got = rows(api.text)
    assert list(got[0]) == ["date", "member", "compute_units", "cpu_hours", "unit_price", "cost"]
    assert len(got) == 3 * len(report["days"]) == 3 * 24  # owner, member, nobody known
    for day in report["days"]:
        of_day = [r for r in got if r["date"] == day["date"]]
        # one row per member, named; the day's rows add up to the day exactly
        names = sorted(f"{u.split('|')[1]}@example.com" for u in (member, owner))
        assert [r["member"] for r in of_day] == [*names, NOBODY_LABEL]
        assert sum(Decimal(r["cost"]) for r in of_day) == Decimal(day["total_cost"])
        assert sum(Decimal(r["compute_units"]) for r in of_day) == Decimal(day["compute_units"])
        assert {r["unit_price"] for r in of_day} == {day["unit_price"]}
        for r in of_day:
            assert Decimal(r["cpu_hours"]) * 10000 == Decimal(r["compute_units"])
    # the same split as the chart, every digit (no float)
    first_day = [r for r in got if r["date"] == "2026-01-01"]
    assert {(r["compute_units"], r["cost"]) for r in first_day} == {
        ("2345.6787", "0.23"), ("10000.0001", "1.00"), ("0.0001", "0.00")}
    assert owner not in api.text and member not in api.text  # names and emails, never ids
    # a member: their own share only, the same as the API gives them
    mine = rows(web.client.get("/v1/account/usage.csv", params=query,
                               headers=member_headers).text)
    assert {(r["member"], r["compute_units"]) for r in mine} == {
        (f"{member.split('|')[1]}@example.com", "2345.6787")}
    # refused before streaming: the API in its JSON shape, the console as a page
    bad = web.client.get("/v1/account/usage.csv", params={"from": "2026-02-01",
                                                          "to": "2026-01-01"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid"
    too_long = web.client.get("/console/usage.csv", params={"from": "2024-01-01",
                                                            "to": "2026-01-01"}, headers=headers)
    assert too_long.status_code == 422 and 'role="alert"' in too_long.text


def test_ledger_csv_has_every_entry_with_exact_amounts(web: Api) -> None:
    owner, headers = web.new_user()
    member, member_headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
        credits.grant(s, owner, "1000.00", reason="welcome", origin=AdminGrant("g"))
        post(s, owner, EntryType.USAGE, "-0.20", description="=cmd|' /C calc'!A0")
        for _ in range(520):  # more than one chunk of 500
            post(s, owner, EntryType.USAGE, "-0.01")
    api = web.client.get("/v1/account/ledger.csv", headers=headers)
    console = web.client.get("/console/ledger.csv", headers=headers)
    assert api.status_code == console.status_code == 200 and api.text == console.text
    got = rows(api.text)
    assert len(got) == 522
    assert [int(r["seq"]) for r in got] == sorted((int(r["seq"]) for r in got), reverse=True)
    assert got[0]["balance"] == "994.60" and got[-1]["amount"] == "1000.00"
    # the customer's words: a grant names who gave it, never their id; a text of no known
    # shape (here a formula) is never copied out, the entry is named by its type alone
    assert got[-1]["description"] == "Credit granted by Support: welcome"
    assert got[-2]["description"] == "Compute used"
    assert got[-2]["amount"] == "-0.20"  # a negative number stays a number
    newest = web.client.get("/v1/account/ledger", params={"limit": 1}, headers=headers).json()
    assert Decimal(got[0]["balance"]) == Decimal(newest["items"][0]["balance"])
    assert web.client.get("/v1/account/ledger.csv", headers=member_headers).status_code == 403
    assert web.client.get("/console/ledger.csv", headers=member_headers).status_code == 403


def test_days_outside_the_calendar_are_422_before_anything_is_sent(web: Api) -> None:
    _, headers = web.new_user()
    for path in ("/v1/account/usage.csv", "/console/usage.csv"):
        for query in ({"from": "9999-12-01", "to": "9999-12-31"},
                      {"from": "0001-01-01", "to": "0001-01-31"}):
            answer = web.client.get(path, params=query, headers=headers)
            assert answer.status_code == 422, (path, query, answer.text[:300])
            assert not answer.headers["content-type"].startswith("text/csv")


def test_a_database_failure_while_an_export_is_written_is_a_503_never_a_short_200(
    web: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written whole before its header: a backend that dies after the first
    chunk leaves nothing sent, so the client gets a 503 to retry, not a file that ends
    cleanly while missing rows."""
    owner, headers = web.new_user()
    with web.db.transaction() as s:
        credits.grant(s, owner, "100.00", reason="welcome", origin=AdminGrant("g"))
        for _ in range(30):
            post(s, owner, EntryType.USAGE, "-0.01")
    monkeypatch.setattr(exports, "LEDGER_CHUNK", 10)
    real_history = credits.history

    def dying_history(session: Any, account_id: str, **kw: Any) -> Any:
        if kw.get("before_seq") is not None:  # the second chunk: the backend is gone
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return real_history(session, account_id, **kw)

    monkeypatch.setattr(credits, "history", dying_history)
    answer = web.client.get("/v1/account/ledger.csv", headers=headers)
    assert answer.status_code == 503, answer.text[:300]
    assert answer.headers["retry-after"] and answer.json()["error"] == "Unavailable"
    monkeypatch.setattr(credits, "history", real_history)
    whole = web.client.get("/v1/account/ledger.csv", headers=headers)
    assert whole.status_code == 200 and len(rows(whole.text)) == 31
    assert whole.headers["content-length"] == str(len(whole.content))


def test_an_export_is_one_snapshot_even_when_usage_changes_while_it_is_written(
    web: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usage is read in 31-day chunks; a day of a later chunk that changes while an earlier
    one is read shows its value as of the export's start (one REPEATABLE READ snapshot)."""
    owner, headers = web.new_user()
    first = date(2026, 1, 1)
    late = first + timedelta(days=65)  # in the third chunk
    with web.db.transaction() as s:
        for n in (0, 40, 65):
            upsert_usage(s, owner, first + timedelta(days=n), "100", {owner: "100"})
    real_report = billing_service.usage_report
    calls = 0

    def report_while_usage_changes(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # between the first and the second chunk, another transaction
            with web.db.transaction() as s:
                s.execute(text("UPDATE usage_tracking SET compute_units = 999, "
                               "user_breakdown = jsonb_build_object(CAST(:o AS text), 999) "
                               "WHERE account_owner_id = :o AND date = :d"),
                          {"o": owner, "d": late})
        return real_report(*args, **kw)

    monkeypatch.setattr(billing_service, "usage_report", report_while_usage_changes)
    query = {"from": first.isoformat(), "to": (first + timedelta(days=80)).isoformat()}
    during = rows(web.client.get("/v1/account/usage.csv", params=query, headers=headers).text)
    assert calls == 3
    assert {r["date"]: r["compute_units"] for r in during}[late.isoformat()] == "100"
    monkeypatch.setattr(billing_service, "usage_report", real_report)
    after = rows(web.client.get("/v1/account/usage.csv", params=query, headers=headers).text)
    assert {r["date"]: r["compute_units"] for r in after}[late.isoformat()] == "999"
