"""The team routes over HTTP with real tokens: the whole invite flow, SMTP, rate limits."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from tests.apps import Api, id_settings
from tests.fake_smtp import SmtpInbox


def test_invite_accept_assign_remove_over_http(api: Api) -> None:
    owner, oh = api.new_user()
    r = api.client.post("/v1/team/invites", headers=oh, json={"email": "Mia@Example.com"})
    assert r.status_code == 201, r.text
    invite = r.json()
    assert "token" not in r.text and invite["status"] == "pending"
    token = api.last_token()

    mia = "auth0|mia"
    mh = api.auth(mia, "mia@example.com")
    assert api.client.get("/v1/me", headers=mh).json()["role"] == "owner"
    r = api.client.post("/v1/invites/accept", headers=mh, json={"token": token})
    assert r.status_code == 200, r.text
    me = api.client.get("/v1/me", headers=mh).json()
    assert me["role"] == "member" and me["account_id"] == owner

    # members are refused owner routes; the owner manages them
    assert api.client.get("/v1/team/members", headers=mh).status_code == 403
    page = api.client.get("/v1/team/members", headers=oh).json()
    assert [m["id"] for m in page["items"]] == [mia] and page["next_cursor"] is None
    r = api.client.put(f"/v1/team/members/{mia}/project", headers=oh,
                       json={"hopsworks_project_id": 119})
    assert r.status_code == 200 and r.json()["hopsworks_project_id"] == 119
    assert api.client.get("/v1/me", headers=mh).json()["hopsworks_project_id"] == 119

    r = api.client.delete(f"/v1/team/members/{mia}", headers=oh)
    assert r.status_code == 200
    assert api.client.get("/v1/me", headers=mh).json()["role"] == "owner"


def test_accept_errors_over_http(api: Api) -> None:
    _, oh = api.new_user()
    api.client.post("/v1/team/invites", headers=oh, json={"email": "x@example.com"})
    token = api.last_token()
    invite_id = api.client.get("/v1/team/invites", headers=oh).json()["items"][0]["id"]
    xh = api.auth("auth0|x", "x@example.com")
    unknown = api.client.post("/v1/invites/accept", headers=xh, json={"token": "nope" * 11})
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFound"
    wrong = api.client.post("/v1/invites/accept", headers=api.auth("auth0|y", "y@example.com"),
                            json={"token": token})
    assert wrong.status_code == 403
    unverified = api.client.post("/v1/invites/accept",
                                 headers=api.auth("auth0|x", "x@example.com", verified=False),
                                 json={"token": token})
    assert unverified.status_code == 403 and "verify" in unverified.json()["detail"]
    assert api.client.delete(f"/v1/team/invites/{invite_id}", headers=oh).status_code == 200
    revoked = api.client.post("/v1/invites/accept", headers=xh, json={"token": token})
    assert revoked.status_code == 410 and revoked.json()["error"] == "Gone"


def test_invite_lists_are_paginated(api: Api) -> None:
    _, oh = api.new_user()
    for i in range(5):
        assert api.client.post("/v1/team/invites", headers=oh,
                               json={"email": f"p{i}@example.com"}).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/team/invites", headers=oh, params=params).json()
        seen += [i["email"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"p{i}@example.com" for i in range(5)]
    bad = api.client.get("/v1/team/invites", headers=oh, params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["error"] == "Invalid"


def test_invite_creation_is_rate_limited_across_processes(fresh_db: Database) -> None:
    settings = id_settings(rate_limit_invites_per_hour=2)
    one, two = create_app(settings, database=fresh_db), create_app(settings, database=fresh_db)
    with TestClient(one) as c1, TestClient(two) as c2:
        a1, a2 = Api(one, c1), Api(two, c2)
        sub = "auth0|limited"
        a1.client.get("/v1/me", headers=a1.auth(sub))
        assert c1.post("/v1/team/invites", headers=a1.auth(sub),
                       json={"email": "r1@example.com"}).status_code == 201
        assert c2.post("/v1/team/invites", headers=a2.auth(sub),
                       json={"email": "r2@example.com"}).status_code == 201
        r = c1.post("/v1/team/invites", headers=a1.auth(sub), json={"email": "r3@example.com"})
        assert r.status_code == 429 and r.json()["error"] == "TooManyRequests"
        assert int(r.headers["retry-after"]) > 0
        # another account has its own budget
        other = a2.auth("auth0|other")
        assert c2.post("/v1/team/invites", headers=other,
                       json={"email": "r4@example.com"}).status_code == 201


def test_failed_acceptance_attempts_count(fresh_db: Database) -> None:
    app = create_app(id_settings(rate_limit_accepts_per_hour=3), database=fresh_db)
    with TestClient(app) as c:
        a = Api(app, c)
        h = a.auth("auth0|guesser")
        codes = [c.post("/v1/invites/accept", headers=h, json={"token": f"guess{i:040d}"})
                 .status_code for i in range(5)]
        assert codes == [404, 404, 404, 429, 429]


def test_the_invite_email_goes_through_smtp(
    fresh_db: Database, smtp_server: tuple[int, SmtpInbox]
) -> None:
    port, inbox = smtp_server
    settings = id_settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    app = create_app(settings, database=fresh_db)
    with TestClient(app) as c:
        headers = {"Authorization": "Bearer " + app.state.identity.dev_issuer.issue(
            "auth0|sender", email="sender@example.com")}
        assert c.post("/v1/team/invites", headers=headers,
                      json={"email": "friend@example.com"}).status_code == 201
    [(_sender, _rcpts, message)] = inbox.messages
    assert b"To: friend@example.com" in message
    assert b"http://console.test/console/invites/accept?token=" in message


def test_metrics_label_routes_by_template_not_by_url(api: Api) -> None:
    api.client.delete("/v1/team/members/auth0|somebody")
    text = api.client.get("/metrics").text
    assert 'route="/v1/team/members/{member_id}"' in text
    assert "auth0|somebody" not in text


def test_a_repeated_invite_request_returns_the_original(api: Api) -> None:
    _, oh = api.new_user()
    first = api.client.post("/v1/team/invites", headers=oh, json={"email": "rep@example.com"})
    again = api.client.post("/v1/team/invites", headers=oh, json={"email": "REP@example.com"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(api.mailer.sent) == 1
