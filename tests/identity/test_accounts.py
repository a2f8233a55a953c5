"""First sign-in creates an owner (race-safe); last_login_at moves at most once a minute."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import SignIn
from hopsplane.db.engine import Database
from hopsplane.errors import Forbidden, Unauthorized
from tests.apps import Api
from tests.factories import RecordingHooks


def sub() -> str:
    return f"auth0|{uuid.uuid4().hex[:12]}"


def test_a_new_subject_becomes_an_owner_once(session: Session) -> None:
    hooks = RecordingHooks()
    s = sub()
    first = accounts.sign_in(session, hooks, SignIn(s, "New@Example.com", True, "New"))
    again = accounts.sign_in(session, hooks, SignIn(s, "new@example.com", True))
    assert first.created and not again.created
    assert first.account_owner_id is None and first.email == "new@example.com"
    assert hooks.events == [("account_created", s)]


def test_without_an_email_claim_no_account_is_created(session: Session) -> None:
    with pytest.raises(Unauthorized, match="Auth0 Action"):
        accounts.sign_in(session, RecordingHooks(), SignIn(sub(), None, False))


def test_an_email_taken_by_another_identity_is_refused(session: Session) -> None:
    accounts.sign_in(session, RecordingHooks(), SignIn(sub(), "same@example.com", True))
    with pytest.raises(Forbidden, match="another sign-in identity"):
        accounts.sign_in(session, RecordingHooks(), SignIn(sub(), "same@example.com", True))


def test_last_login_moves_at_most_once_a_minute(session: Session) -> None:
    s = sub()
    accounts.sign_in(session, RecordingHooks(), SignIn(s, f"{s[6:]}@example.com", True))
    stamp = "SELECT last_login_at FROM users WHERE id = :id"
    session.execute(text("UPDATE users SET last_login_at = now() - interval '30 seconds' "
                         "WHERE id = :id"), {"id": s})
    before = session.execute(text(stamp), {"id": s}).scalar_one()
    accounts.sign_in(session, RecordingHooks(), SignIn(s, None, False))
    assert session.execute(text(stamp), {"id": s}).scalar_one() == before
    session.execute(text("UPDATE users SET last_login_at = now() - interval '61 seconds' "
                         "WHERE id = :id"), {"id": s})
    accounts.sign_in(session, RecordingHooks(), SignIn(s, None, False))
    after = session.execute(text(stamp), {"id": s}).scalar_one()
    assert after > before


def test_concurrent_first_requests_create_one_owner(fresh_db: Database) -> None:
    s = sub()
    hooks = RecordingHooks()
    barrier = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def first_request() -> None:
        try:
            with fresh_db.transaction() as session:
                barrier.wait()
                results.append(
                    accounts.sign_in(session, hooks, SignIn(s, "race@example.com", True)).created
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [False] * 7 + [True]
    assert hooks.events == [("account_created", s)]
    with fresh_db.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM users WHERE id = :id"),
                               {"id": s}).scalar_one() == 1


def test_me_over_http_with_a_bearer_token(api: Api) -> None:
    _, headers = api.new_user()
    body = api.client.get("/v1/me", headers=headers).json()
    assert body["role"] == "owner" and body["account_owner_id"] is None
    r = api.client.get("/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    r = api.client.get("/v1/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401 and "malformed" in r.json()["detail"]
    assert api.client.get("/v1/me").status_code == 401


def test_a_query_parameter_given_twice_is_refused_not_guessed(api: Api) -> None:
    _, headers = api.new_user()
    r = api.client.get("/v1/account/ledger", params=[("cursor", "9"), ("cursor", "x")],
                       headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid" and "cursor" in r.json()["detail"]
    once = api.client.get("/v1/account/ledger", params={"cursor": "9"}, headers=headers)
    assert once.status_code == 200
    page = api.client.get("/console/ledger", params=[("cursor", "1"), ("cursor", "2")],
                          headers=headers)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
