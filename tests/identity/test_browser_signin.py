"""Browser sign-in end to end: /auth/login → the local issuer's /authorize (real HTTP) →
/auth/callback (code exchanged over real HTTP, PKCE checked by the issuer) → cookie."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from hopsplane.http.session_cookie import SESSION_COOKIE
from tests.apps import Api, authorize, id_settings, signed_in, start


def test_sign_in_with_pkce_sets_a_signed_http_only_cookie(api: Api) -> None:
    location, query = start(api)
    assert location.startswith(api.issuer.issuer + "authorize?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == "http://console.test/auth/callback"
    assert query["audience"] == api.issuer.audience

    back = authorize(location, "Ann@Example.com")
    r = api.client.get("/auth/callback", params=back, follow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/team"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" in cookie  # outside development, whatever the public URL
    [exchange] = api.issuer.token_requests
    assert len(exchange["code_verifier"]) >= 43  # the verifier went to the token endpoint

    me = api.client.get("/v1/me")
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == "ann@example.com" and body["role"] == "owner"
    assert api.hooks.events == [("account_created", body["id"])]


def test_a_state_that_does_not_match_is_refused(api: Api) -> None:
    location, _ = start(api)
    back = authorize(location, "bob@example.com")
    r = api.client.get("/auth/callback", params={**back, "state": "forged"},
                       follow_redirects=False)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert api.client.get("/v1/me").status_code == 401


def test_a_code_works_once(api: Api) -> None:
    location, _ = start(api)
    back = authorize(location, "carl@example.com")
    login_cookie = api.client.cookies["hopsplane_login"]
    assert api.client.get("/auth/callback", params=back, follow_redirects=False).status_code == 302
    assert "hopsplane_login" not in api.client.cookies  # the pending sign-in is forgotten
    api.client.cookies.set("hopsplane_login", login_cookie, path="/auth")  # a replay
    again = api.client.get("/auth/callback", params=back, follow_redirects=False)
    assert again.status_code == 401 and "sign-in failed" in again.json()["detail"]


def test_a_callback_without_the_login_cookie_is_refused(api: Api) -> None:
    location, _ = start(api)
    back = authorize(location, "dora@example.com")
    api.client.cookies.clear()
    r = api.client.get("/auth/callback", params=back, follow_redirects=False)
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]


def test_the_token_endpoint_checks_the_pkce_verifier(api: Api) -> None:
    location, _ = start(api)
    back = authorize(location, "eve@example.com")
    stolen = httpx.post(api.issuer.issuer + "oauth/token", data={
        "grant_type": "authorization_code", "client_id": "hopsplane-dev-console",
        "code": back["code"], "code_verifier": "x" * 64,
        "redirect_uri": "http://console.test/auth/callback",
    })
    assert stolen.status_code == 403 and stolen.json()["error"] == "invalid_grant"


def test_a_provider_error_is_shown_not_crashed_on(api: Api) -> None:
    start(api)
    r = api.client.get("/auth/callback", params={"error": "access_denied",
                                                 "error_description": "user cancelled"},
                       follow_redirects=False)
    assert r.status_code == 401 and "user cancelled" in r.json()["detail"]


def test_a_tampered_session_cookie_is_refused(api: Api) -> None:
    location, _ = start(api)
    api.client.get("/auth/callback", params=authorize(location, "fay@example.com"),
                   follow_redirects=False)
    value = api.client.cookies[SESSION_COOKIE]
    assert api.client.get("/v1/me").status_code == 200
    api.client.cookies.clear()
    api.client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert api.client.get("/v1/me").status_code == 401


def test_return_to_cannot_leave_the_site(api: Api) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
        location, _ = start(api, return_to=target)
        back = authorize(location, "gus@example.com")
        r = api.client.get("/auth/callback", params=back, follow_redirects=False)
        assert r.headers["location"] == "/", target


def test_logout_forgets_the_session_and_signs_out_at_the_provider(api: Api) -> None:
    location, _ = start(api)
    api.client.get("/auth/callback", params=authorize(location, "hal@example.com"),
                   follow_redirects=False)
    assert api.client.get("/v1/me").status_code == 200
    # another site's form (no token) cannot sign the user out, nor can a GET
    assert api.client.post("/auth/logout", follow_redirects=False).status_code == 403
    assert api.client.get("/auth/logout", follow_redirects=False).status_code == 405
    assert api.client.get("/v1/me").status_code == 200
    page = api.client.get("/console")
    token = re.search(r'action="/auth/logout"><input type="hidden" name="csrf" value="(\w+)"',
                      page.text)
    assert token, page.text
    r = api.client.post("/auth/logout", data={"csrf": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith(api.issuer.issuer + "v2/logout?")
    back = parse_qs(urlsplit(r.headers["location"]).query)["returnTo"]
    assert back == [api.app.state.settings.public_url.rstrip("/") + "/console/signed-out"]
    assert api.client.get("/v1/me").status_code == 401
    landing = api.client.get("/console/signed-out")
    assert landing.status_code == 200 and "<h1>You are signed out</h1>" in landing.text
    assert "hal@example.com" not in landing.text
    # signed out already: nothing to forget, no token needed
    assert api.client.post("/auth/logout", follow_redirects=False).status_code == 303


def test_the_dev_issuer_hands_out_api_tokens_for_shell_use(api: Api) -> None:
    r = httpx.post(api.issuer.issuer + "dev/token", data={"email": "Shell@Example.com"})
    assert r.status_code == 200
    me = api.client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "shell@example.com"
    assert httpx.post(api.issuer.issuer + "dev/token", data={"email": "nope"}).status_code == 400


def me_with(client: TestClient, cookie: str) -> httpx.Response:
    """/v1/me as a browser holding only this session cookie."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return client.get("/v1/me")


def test_a_copy_of_the_cookie_is_worthless_after_sign_out(api: Api) -> None:
    copied = signed_in(api, "ivy@example.com")
    page = api.client.get("/console")
    token = re.search(r'name="csrf" value="(\w+)"', page.text)
    assert token
    r = api.client.post("/auth/logout", data={"csrf": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303
    api.client.cookies.clear()
    api.client.cookies.set(SESSION_COOKIE, copied)  # the cookie, kept by someone else
    assert api.client.get("/v1/me").status_code == 401
    stale = api.client.get("/console", follow_redirects=False)
    assert stale.status_code == 303 and stale.headers["location"].startswith("/auth/login")


def test_an_admin_signs_a_user_out_everywhere(api: Api) -> None:
    _, admin = api.new_user(admin=True)
    first = signed_in(api, "jo@example.com")
    api.client.cookies.clear()
    second = signed_in(api, "jo@example.com")  # another browser
    api.client.cookies.clear()
    me = me_with(api.client, first)
    assert me.status_code == 200
    user_id = me.json()["id"]
    # someone who is not a platform admin cannot
    r = api.client.post(f"/v1/admin/users/{user_id}/sessions/revoke",
                        headers=api.auth(user_id, "jo@example.com"))
    assert r.status_code == 403
    r = api.client.post(f"/v1/admin/users/{user_id}/sessions/revoke", headers=admin)
    assert r.status_code == 200 and r.json() == {"revoked": 2}
    for cookie in (first, second):
        assert me_with(api.client, cookie).status_code == 401
    # the user can sign in again
    assert me_with(api.client, signed_in(api, "jo@example.com")).status_code == 200
    unknown = api.client.post("/v1/admin/users/nobody/sessions/revoke", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_a_new_signing_key_in_front_signs_nobody_out(fresh_db: Database) -> None:
    old, new = "o" * 40, "n" * 40
    before = create_app(id_settings(secret_key=old), database=fresh_db)
    with TestClient(before, base_url="https://testserver") as client:
        first = Api(before, client)
        cookie = signed_in(first, "kim@example.com")
    after = create_app(id_settings(secret_key=f"{new},{old}"), database=fresh_db)
    with TestClient(after, base_url="https://testserver") as client:
        assert me_with(client, cookie).status_code == 200
    dropped = create_app(id_settings(secret_key=new), database=fresh_db)
    with TestClient(dropped, base_url="https://testserver") as client:
        assert me_with(client, cookie).status_code == 401

