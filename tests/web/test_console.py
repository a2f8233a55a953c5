"""The web console: pages render what the services hold, guards match the API's, forms need
their CSRF token, and a refused form shows why and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date
from decimal import Decimal
from urllib.parse import quote, unquote

from sqlalchemy import text

from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant
from hopsplane.db.engine import Database
from hopsplane.http.session_cookie import SESSION_COOKIE
from tests.apps import Api, authorize, csrf_of, signed_in, start


def invites_of(db: Database, owner: str) -> list[str]:
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT email FROM team_invites WHERE account_owner_id = :o ORDER BY email"
        ), {"o": owner}).scalars())


def test_anonymous_is_sent_to_sign_in_and_brought_back(web: Api) -> None:
    r = web.client.get("/console/usage?from=2026-01-01", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/login?return_to=/console/usage%3Ffrom%3D2026-01-01"
    # a form posted without a session gets the sign-in page, in HTML, from the error's code
    r = web.client.post("/console/topup", data={"amount": "5"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Please sign in</h1>" in r.text and 'data-code="unauthorized"' in r.text
    assert 'href="/auth/login?return_to=/console/topup"' in r.text
    # the API keeps its JSON error shape
    api = web.client.get("/v1/me")
    assert api.status_code == 401 and api.json()["error"] == "Unauthorized"
    # / leads to the console
    root = web.client.get("/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/console"


def test_owner_sees_balance_and_ledger(web: Api) -> None:
    owner, headers = web.new_user()
    with web.db.transaction() as s:
        credits.grant(s, owner, "25.50", reason="welcome <b>credit</b>", origin=AdminGrant("g1"))
    home = web.client.get("/console", headers=headers)
    assert home.status_code == 200
    assert 'id="balance" data-amount="25.50">$25.50</p>' in home.text
    assert "In good standing" in home.text
    assert "No usage in the last 7 days" in home.text
    assert "Buy credits" in home.text
    assert "not assigned yet" in home.text  # the cluster, in words
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET hopsworks_project_id = 7, metadata = metadata || "
                       "'{\"hopsworks_project_name\": \"acme_ml\"}' WHERE id = :o"), {"o": owner})
    project = web.client.get("/console", headers=headers).text
    assert "acme_ml" in project and "project #7" not in project  # named, not by number
    ledger = web.client.get("/console/ledger", headers=headers)
    assert ledger.status_code == 200
    # descriptions are escaped, never rendered as markup
    assert "welcome &lt;b&gt;credit&lt;/b&gt;" in ledger.text and "<b>credit" not in ledger.text
    assert ">$25.50<" in ledger.text


def test_member_pages_follow_the_api_guards(web: Api) -> None:
    owner, _ = web.new_user()
    member, member_headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
    assert web.client.get("/console", headers=member_headers).status_code == 200
    for path in ("/console/ledger", "/console/team"):
        r = web.client.get(path, headers=member_headers)
        assert r.status_code == 403, path
        assert "Only the account owner" in r.text  # a sentence, not a fragment
    # the member's navigation has no owner pages
    home = web.client.get("/console", headers=member_headers).text
    assert "/console/ledger" not in home and "Buy credits" not in home


def test_usage_page_shows_days_and_breakdown_and_refuses_bad_dates(web: Api) -> None:
    owner, headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text(
            "INSERT INTO usage_tracking (account_owner_id, date, compute_units, user_breakdown) "
            "VALUES (:o, :d, 12345, jsonb_build_object(CAST(:o AS text), 12345))"
        ), {"o": owner, "d": date(2026, 11, 20)})
    r = web.client.get("/console/usage", params={"from": "2026-11-01", "to": "2026-11-24"},
                       headers=headers)
    assert r.status_code == 200
    with web.db.transaction() as s:
        email = s.execute(text("SELECT email FROM users WHERE id = :o"), {"o": owner}).scalar()
    assert "2026-11-20" in r.text and f"{email}: 1.23" in r.text  # CPU-hours, by email
    assert owner not in r.text.replace(quote(owner, safe=""), "")  # never the raw id
    assert ">12,345.00<" in r.text and ">1.23<" in r.text
    # the first days of the calendar: the default window is cut short, not an overflow
    assert web.client.get("/console/usage", params={"to": "0001-01-05"},
                          headers=headers).status_code == 200
    bad = web.client.get("/console/usage", params={"from": "2026-13-01"}, headers=headers)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    # refused on the page itself: the picker keeps what was typed, the reason is shown
    assert 'value="2026-13-01"' in bad.text and "YYYY-MM-DD" in bad.text
    assert 'role="alert"' in bad.text and 'name="from"' in bad.text
    backwards = web.client.get("/console/usage", params={"from": "2026-11-24", "to": "2026-11-01"},
                               headers=headers)
    assert backwards.status_code == 422
    assert "The end date is before the start date" in backwards.text
    assert "Please check" not in backwards.text and "`to`" not in backwards.text


def test_invite_and_revoke_through_forms(web: Api) -> None:
    owner, headers = web.new_user()
    page = web.client.get("/console/team", headers=headers)
    token = csrf_of(page.text)
    r = web.client.post("/console/team/invites", data={"csrf": token, "email": "Dee@Example.com"},
                        headers=headers, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/team?notice=invited"
    assert invites_of(web.db, owner) == ["dee@example.com"]
    assert "dee@example.com" in web.mailer.sent[-1].to
    page = web.client.get("/console/team?notice=invited", headers=headers)
    assert "Invite sent." in page.text and "dee@example.com" in page.text
    invite_id = re.search(r"/console/team/invites/([0-9a-f-]{36})/revoke", page.text)
    assert invite_id
    r = web.client.post(f"/console/team/invites/{invite_id.group(1)}/revoke",
                        data={"csrf": token}, headers=headers, follow_redirects=False)
    assert r.status_code == 303
    with web.db.transaction() as s:
        revoked = s.execute(text("SELECT revoked_at IS NOT NULL FROM team_invites "
                                 "WHERE account_owner_id = :o"), {"o": owner}).scalar_one()
    assert revoked


def test_a_form_without_its_token_is_refused_and_changes_nothing(web: Api) -> None:
    owner, headers = web.new_user()
    for data in ({"email": "eve@example.com"}, {"email": "eve@example.com", "csrf": "0" * 64}):
        r = web.client.post("/console/team/invites", data=data, headers=headers)
        assert r.status_code == 403 and "reload the page" in r.text
    # a token made for someone else's credentials does not work either
    _, other_headers = web.new_user()
    other_token = csrf_of(web.client.get("/console/team", headers=other_headers).text)
    r = web.client.post("/console/team/invites", data={"csrf": other_token,
                        "email": "eve@example.com"}, headers=headers)
    assert r.status_code == 403
    assert invites_of(web.db, owner) == []
    assert web.mailer.sent == []


def test_a_refused_invite_shows_why_and_changes_nothing(web: Api) -> None:
    owner, headers = web.new_user(email="own@example.com")
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    for email, reason in (("not-an-email", "email"), ("own@example.com", "yourself"),
                          ("", "Type the email")):
        r = web.client.post("/console/team/invites", data={"csrf": token, "email": email},
                            headers=headers)
        assert 400 <= r.status_code < 500, (email, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        assert reason in r.text, (email, r.text[:500])
        assert 'role="alert"' in r.text
    assert invites_of(web.db, owner) == []


def test_buy_credits_sends_the_browser_to_stripe_checkout(web: Api) -> None:
    owner, headers = web.new_user()
    token = csrf_of(web.client.get("/console", headers=headers).text)
    r = web.client.post("/console/topup", data={"csrf": token, "amount": "20"},
                        headers=headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("http")
    too_small = web.client.post("/console/topup", data={"csrf": token, "amount": "1"},
                                headers=headers)
    assert too_small.status_code == 422
    assert 'role="alert"' in too_small.text
    with web.db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("0.00")  # paid only when Stripe says so


def test_the_invite_email_link_leads_through_sign_in_to_joining(web: Api) -> None:
    owner, headers = web.new_user()
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    web.client.post("/console/team/invites", data={"csrf": token, "email": "fay@example.com"},
                    headers=headers)
    link = re.search(r"http://console\.test(/console/invites/accept\?token=\S+)",
                     web.mailer.sent[-1].body)
    assert link, web.mailer.sent[-1].body
    path = link.group(1)
    # not signed in yet: a sign-in page that comes back to this very link
    anonymous = web.client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303
    back = re.search(r'^/auth/login\?return_to=(.+)$', anonymous.headers["location"])
    assert back and unquote(back.group(1)) == path

    # the browser signs in (real code flow with PKCE, session cookie) and lands on the link
    location, _ = start(web, return_to=unquote(back.group(1)))
    callback = web.client.get("/auth/callback", params=authorize(location, "fay@example.com"),
                              follow_redirects=False)
    assert callback.status_code == 302 and callback.headers["location"] == path
    page = web.client.get(path)  # the cookie, no header
    assert page.status_code == 200 and "Join the team of" in page.text
    with web.db.transaction() as s:
        inviter = s.execute(text("SELECT email FROM users WHERE id = :o"),
                            {"o": owner}).scalar_one()
    # who invited whom: the inviter by address, the invited address, and no warning
    assert f"<strong>{inviter}</strong> invited <strong>fay@example.com</strong>" in page.text
    assert 'id="invite-other"' not in page.text
    invite_token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert invite_token and path.endswith(invite_token.group(1))
    r = web.client.post("/console/invites/accept", follow_redirects=False,
                        data={"csrf": csrf_of(page.text), "token": invite_token.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/console?notice=joined"
    with web.db.transaction() as s:
        joined = s.execute(text("SELECT account_owner_id FROM users "
                                "WHERE email = 'fay@example.com'")).scalar_one()
    assert joined == owner
    home = web.client.get("/console?notice=joined")
    assert "You joined the team" in home.text and "Buy credits" not in home.text


def test_a_bad_invite_token_is_explained_and_changes_nothing(web: Api) -> None:
    user, headers = web.new_user()
    page = web.client.get("/console/invites/accept?token=" + "x" * 43, headers=headers)
    r = web.client.post("/console/invites/accept", headers=headers,
                        data={"csrf": csrf_of(page.text), "token": "x" * 43})
    assert r.status_code == 404 and "not valid" in r.text and 'role="alert"' in r.text
    with web.db.transaction() as s:
        assert s.execute(text("SELECT account_owner_id FROM users WHERE id = :u"),
                         {"u": user}).scalar_one() is None


def ledger_count(db: Database, account: str) -> int:
    with db.transaction() as s:
        return int(s.execute(text("SELECT count(*) FROM credits_ledger "
                                  "WHERE account_owner_id = :a"), {"a": account}).scalar_one())


def test_admin_pages_are_for_platform_admins_only(web: Api) -> None:
    _, owner_headers = web.new_user()
    r = web.client.get("/console/admin", headers=owner_headers)
    assert r.status_code == 403 and "Only platform admins" in r.text
    assert "<h1>Not allowed</h1>" in r.text
    _, admin_headers = web.new_user(admin=True)
    page = web.client.get("/console/admin", headers=admin_headers)
    assert page.status_code == 200 and "No clusters registered" in page.text


def test_admin_finds_an_account_and_grants_once_per_form(web: Api) -> None:
    owner, _ = web.new_user(email="gus@example.com")
    member, member_headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
    _, admin_headers = web.new_user(admin=True)
    found = web.client.get("/console/admin/find", params={"q": "GUS@example.com"},
                           headers=admin_headers, follow_redirects=False)
    assert found.status_code == 303
    account_path = found.headers["location"]
    assert unquote(account_path) == f"/console/admin/accounts/{owner}"
    # looking up a member leads to their owner's account
    via_member = web.client.get("/console/admin/find", params={"q": member},
                                headers=admin_headers, follow_redirects=False)
    assert via_member.headers["location"] == account_path
    # a member has no account page of their own: the ledger's owner rule answers, as in the API
    member_page = web.client.get(f"/console/admin/accounts/{member}", headers=admin_headers)
    assert member_page.status_code == 422 and "team member" in member_page.text
    missing = web.client.get("/console/admin/find", params={"q": "nobody@example.com"},
                             headers=admin_headers)
    assert missing.status_code == 404 and "nobody@example.com" in missing.text

    page = web.client.get(account_path, headers=admin_headers)
    fields = {"csrf": csrf_of(page.text),
              "key": re.search(r'name="key" value="([0-9a-f]{32})"', page.text).group(1),  # type: ignore[union-attr]
              "amount": "12.50", "reason": "support ticket 42"}
    grant_path = account_path + "/grant"
    no_reason = web.client.post(grant_path, data={**fields, "reason": " "},
                                headers=admin_headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    assert ledger_count(web.db, owner) == 0
    for _ in range(2):  # the same form twice: one grant
        r = web.client.post(grant_path, data=fields, headers=admin_headers,
                            follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("?notice=granted")
    assert ledger_count(web.db, owner) == 1
    with web.db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("12.50")
    # the same key with another amount is refused, not applied
    other = web.client.post(grant_path, data={**fields, "amount": "99"}, headers=admin_headers)
    assert other.status_code == 409 and ledger_count(web.db, owner) == 1
    shown = web.client.get(account_path + "?notice=granted", headers=admin_headers)
    assert '<strong id="balance">$12.50</strong>' in shown.text and "support ticket 42" in shown.text
    # a member asking for the admin pages is refused
    assert web.client.get(account_path, headers=member_headers).status_code == 403


def test_console_pages_carry_the_security_headers(web: Api) -> None:
    _, headers = web.new_user()
    for r in (web.client.get("/console", headers=headers),
              web.client.get("/console/signed-out")):
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp  # no scripts at all: default-src 'none' covers them
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-content-type-options"] == "nosniff"
        # the one inline stylesheet is allowed by its hash, and it is the one served
        style = r.text.split("<style>", 1)[1].split("</style>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in csp
    assert "content-security-policy" not in web.client.get("/v1/me", headers=headers).headers


def test_an_admin_signs_a_user_out_everywhere_from_the_console(web: Api) -> None:
    cookie = signed_in(web, "lou@example.com")
    user_id = web.client.get("/v1/me").json()["id"]
    web.client.cookies.clear()
    _, admin_headers = web.new_user(admin=True)
    account_path = f"/console/admin/accounts/{quote(user_id, safe='')}"
    page = web.client.get(account_path, headers=admin_headers)
    assert "Sign out everywhere" in page.text
    forged = web.client.post(account_path + "/sign-out", data={"csrf": "0" * 64},
                             headers=admin_headers)
    assert forged.status_code == 403
    web.client.cookies.set(SESSION_COOKIE, cookie)
    assert web.client.get("/v1/me").status_code == 200  # the refused form revoked nothing
    web.client.cookies.clear()
    r = web.client.post(account_path + "/sign-out", data={"csrf": csrf_of(page.text)},
                        headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=signed-out")
    web.client.cookies.set(SESSION_COOKIE, cookie)
    assert web.client.get("/v1/me").status_code == 401


def test_team_pages_through_every_member_with_name_email_role_project(web: Api) -> None:
    owner, headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text(
            "INSERT INTO users (id, email, name, account_owner_id, hopsworks_project_id, "
            "created_at) SELECT 'm' || g, 'm' || g || '@example.com', 'Member ' || g, :o, g, "
            "now() - g * interval '1 minute' FROM generate_series(1, 60) g"), {"o": owner})
    first = web.client.get("/console/team", headers=headers)
    assert first.status_code == 200
    seen = set(re.findall(r"m(\d+)@example\.com", first.text))
    assert len(seen) == 50 and "Account owner (you)" in first.text
    assert re.search(r'<td data-label="Name">Member 1</td><td data-label="Email">m1@example\.com'
                     r'</td><td data-label="Role">Member</td>\s*'
                     r'<td data-label="Hopsworks project" class="with-form"><span>project 1</span>',
                     first.text)
    more = re.search(r'href="/console/team\?members=([^"]+)"', first.text)
    assert more
    second = web.client.get(f"/console/team?members={more.group(1)}", headers=headers)
    rest = set(re.findall(r"m(\d+)@example\.com", second.text))
    assert len(rest) == 10 and not seen & rest and "Account owner (you)" not in second.text
    assert 'href="/console/team?members=' not in second.text  # the last page
    bad = web.client.get("/console/team?members=nonsense", headers=headers)
    assert bad.status_code == 422 and 'role="alert"' in bad.text
