"""A console page holds one pooled connection: whatever it needs (the caller, their
capabilities for the navigation, the page's data) is read in the request's own session, so
a burst of page views cannot take two connections each and exhaust the pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

from tests.apps import Api
from tests.web.test_organizations import email_of


@contextmanager
def checkouts(api: Api) -> Iterator[dict[str, int]]:
    """Counts the connections taken from the app's pool, and the most held at once."""
    seen = {"taken": 0, "held": 0, "most": 0, "role_queries": 0}

    def took(*_: Any) -> None:
        seen["taken"] += 1
        seen["held"] += 1
        seen["most"] = max(seen["most"], seen["held"])

    def gave_back(*_: Any) -> None:
        seen["held"] -= 1

    def ran(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "SELECT m.organization_id, m.role" in statement:  # the caller's roles
            seen["role_queries"] += 1

    pool, engine = api.db.engine.pool, api.db.engine
    event.listen(pool, "checkout", took)
    event.listen(pool, "checkin", gave_back)
    event.listen(engine, "before_cursor_execute", ran)
    try:
        yield seen
    finally:
        event.remove(pool, "checkout", took)
        event.remove(pool, "checkin", gave_back)
        event.remove(engine, "before_cursor_execute", ran)


def test_every_console_page_takes_one_connection_for_owner_and_delegated_member(
    api: Api,
) -> None:
    owner, oh = api.new_user()
    ann, ah = api.new_user()
    with api.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :a"),
                  {"o": owner, "a": ann})
    org = api.client.post("/v1/organizations", json={"name": "Ops"}, headers=oh).json()["id"]
    r = api.client.put(f"/v1/organizations/{org}/members",
                       json={"email": email_of(api, ann), "role": "admin"}, headers=oh)
    assert r.status_code == 200, r.text
    pages = ["/console", "/console/ledger", "/console/usage", "/console/team",
             "/console/auto-topup", "/console/organizations"]
    for who, headers in (("owner", oh), ("admin member", ah)):
        for page in pages:
            with checkouts(api) as seen:
                r = api.client.get(page, headers=headers)
            assert r.status_code == 200, (who, page, r.status_code, r.text[:300])
            # the navigation shows what the role delegates: read in the same session
            assert 'href="/console/team"' in r.text, (who, page)
            assert (seen["taken"], seen["most"]) == (1, 1), (who, page, seen)
            # what the caller may do is read once, whoever asks (guard, page, navigation)
            assert seen["role_queries"] == (0 if who == "owner" else 1), (who, page, seen)


def test_a_refused_console_page_takes_one_connection(api: Api) -> None:
    owner, _ = api.new_user()
    ann, ah = api.new_user()
    with api.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :a"),
                  {"o": owner, "a": ann})
    with checkouts(api) as seen:
        r = api.client.get("/console/ledger", headers=ah)  # a plain member: no ledger
    assert r.status_code == 403
    assert 'href="/console/ledger"' not in r.text
    assert seen["most"] == 1, seen
