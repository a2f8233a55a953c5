"""What the console can do for each role, as the API can (resend or hand over an invite
link, remove a member, assign a project, take a person out of an organization, list
accounts, change a cluster's status, place an account), and the words a customer reads
(names and currency, never an id; per-field errors; kind states). Every form is refused
with a 4xx that changes nothing when its input is bad, its CSRF token is wrong or the
caller lacks the API's guard."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.billing.rules import usage_description
from hopsplane.credits import service as credits
from hopsplane.credits.origins import AdminGrant, OperatorGrant
from hopsplane.credits.rules import EntryType
from hopsplane.db.engine import Database
from hopsplane.http import wording
from hopsplane.web import charts
from hopsplane.worker import service as worker
from tests.apps import Api, csrf_of, id_settings
from tests.factories import make_cluster, post, upsert_usage

ID_PATTERNS = re.compile(
    r"[a-z0-9-]+\|[0-9a-f]{6,}|\(by cli\)|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{12}\b|\bpi_[A-Za-z0-9]+|\bgrant: |\busage \d{4}-")
"""What a customer must never read: a user id (``auth0|…``, ``dev|…``), operators' jargon,
a UUID, a Stripe id, the ledger's stored prefixes."""


def visible(html: str) -> str:
    """The text of a page a person reads: no markup, no attributes (form actions and
    hidden fields carry ids by design), no stylesheet."""
    body = html.split("</style>", 1)[-1]
    return re.sub(r"<[^>]+>", " ", body)


@pytest.fixture
def plain(fresh_db: Database) -> Iterator[Api]:
    """The console as `hopsplane serve` runs it in development: no SMTP (invite links are
    shown to hand over), no card payments, a support address."""
    settings = id_settings(environment="development", support_email="help@hops.test")
    app = create_app(settings, database=fresh_db)
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)


def join(db: Database, owner: str, member: str, name: str | None = None) -> None:
    with db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o, name = coalesce(:n, name) "
                       "WHERE id = :m"), {"o": owner, "m": member, "n": name})


def owner_of(db: Database, user: str) -> str | None:
    with db.transaction() as s:
        return s.execute(text("SELECT account_owner_id FROM users WHERE id = :u"),
                         {"u": user}).scalar_one()  # type: ignore[no-any-return]


def project_of(db: Database, user: str) -> int | None:
    with db.transaction() as s:
        return s.execute(text("SELECT hopsworks_project_id FROM users WHERE id = :u"),
                         {"u": user}).scalar_one()  # type: ignore[no-any-return]


# --- the team ------------------------------------------------------------------------


def test_owner_removes_a_member_and_assigns_a_project_and_bad_input_changes_nothing(
    web: Api,
) -> None:
    owner, headers = web.new_user()
    member, member_headers = web.new_user()
    join(web.db, owner, member, "Mo Ray")
    page = web.client.get("/console/team", headers=headers)
    token = csrf_of(page.text)
    assert "Remove Mo Ray" in page.text and "Project number for Mo Ray" in page.text
    base = f"/console/team/members/{quote(member, safe='')}"

    # a project: words per case, nothing stored on a refusal
    for typed in ("", "abc", "-3", "1.5", "99999999999"):
        r = web.client.post(base + "/project", headers=headers,
                            data={"csrf": token, "hopsworks_project_id": typed})
        assert r.status_code == 422, (typed, r.status_code)
        assert "A Hopsworks project is given by its number" in r.text
        assert project_of(web.db, member) is None
    r = web.client.post(base + "/project", headers=headers, follow_redirects=False,
                        data={"csrf": token, "hopsworks_project_id": "119"})
    assert r.status_code == 303 and r.headers["location"] == "/console/team?notice=project-assigned"
    assert project_of(web.db, member) == 119

    # the member may not do either (the API's TeamDep), and a forged token is refused
    r = web.client.post(base + "/remove", headers=member_headers, data={"csrf": token})
    assert r.status_code == 403
    r = web.client.post(base + "/remove", headers=headers, data={"csrf": "0" * 64})
    assert r.status_code == 403 and owner_of(web.db, member) == owner

    # someone who is not a member: 404 in words, nothing changes
    r = web.client.post("/console/team/members/auth0%7Cnobody/remove", headers=headers,
                        data={"csrf": token})
    assert r.status_code == 404 and "not a member of your team" in r.text
    assert "Page not found:" not in r.text and "auth0|nobody" not in visible(r.text)
    r = web.client.post(base + "/remove", headers=headers, follow_redirects=False,
                        data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/console/team?notice=member-removed"
    assert owner_of(web.db, member) is None  # an account of their own now


def test_resend_emails_a_new_link_named_and_the_old_one_stops_working(web: Api) -> None:
    _, headers = web.new_user()
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    web.client.post("/console/team/invites", data={"csrf": token, "email": "ida@example.com"},
                    headers=headers)
    old = web.last_token()
    page = web.client.get("/console/team", headers=headers)
    assert "Resend to ida@example.com" in page.text
    invite_id = re.search(r'/console/team/invites/([0-9a-f-]{36})/resend', page.text)
    assert invite_id
    r = web.client.post(f"/console/team/invites/{invite_id.group(1)}/resend",
                        data={"csrf": token}, headers=headers, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/team?notice=resent"
    assert web.last_token() != old and web.mailer.sent[-1].to == "ida@example.com"
    # an unknown invite: 404 in words; nothing sent
    sent = len(web.mailer.sent)
    r = web.client.post(f"/console/team/invites/{uuid.uuid4()}/resend", data={"csrf": token},
                        headers=headers)
    assert r.status_code == 404 and "That invite no longer exists" in r.text
    assert len(web.mailer.sent) == sent


def test_without_smtp_each_invite_link_is_shown_named_for_the_owner_to_hand_over(
    plain: Api,
) -> None:
    _, headers = plain.new_user()
    token = csrf_of(plain.client.get("/console/team", headers=headers).text)
    first = plain.client.post("/console/team/invites", headers=headers,
                              data={"csrf": token, "email": "ana@example.com"})
    assert first.status_code == 201 and "Invite link for <strong>ana@example.com</strong>" in \
        first.text
    plain.client.post("/console/team/invites", headers=headers,
                      data={"csrf": token, "email": "bo@example.com"})
    page = plain.client.get("/console/team", headers=headers)
    # every pending invite has its own named button for a fresh link, not only the last
    assert "New link for ana@example.com" in page.text
    assert "New link for bo@example.com" in page.text
    ana = re.search(r'action="/console/team/invites/([0-9a-f-]{36})/resend">\s*<input[^>]+>'
                    r'<button type="submit" class="secondary">New link for ana@', page.text)
    assert ana
    again = plain.client.post(f"/console/team/invites/{ana.group(1)}/resend",
                              data={"csrf": token}, headers=headers)
    assert again.status_code == 200
    assert "Invite link for <strong>ana@example.com</strong>" in again.text
    assert re.search(r'value="http://console\.test/console/invites/accept\?token=', again.text)


def test_the_team_page_puts_you_on_your_own_row_for_an_organization_admin(web: Api) -> None:
    owner, headers = web.new_user(email="olga@example.com")
    admin, admin_headers = web.new_user(email="ada@example.com")
    join(web.db, owner, admin, "Ada")
    token = csrf_of(web.client.get("/console/organizations", headers=headers).text)
    r = web.client.post("/console/organizations", data={"csrf": token, "name": "Ops"},
                        headers=headers, follow_redirects=False)
    org = r.headers["location"]
    web.client.post(org + "/members", data={"csrf": token, "email": "ada@example.com",
                                            "role": "admin"}, headers=headers)
    page = web.client.get("/console/team", headers=admin_headers)
    assert page.status_code == 200
    assert "Account owner (you)" not in page.text
    assert re.search(r'ada@example\.com</td><td data-label="Role">Member \(you\)', page.text)
    # and every page says whose account Ada works in
    home = web.client.get("/console", headers=admin_headers).text
    assert "in the account of olga@example.com" in home
    assert "You work in the account of <strong>olga@example.com</strong>" in home


def test_an_invite_page_says_who_invited_whom_and_refuses_the_wrong_person_plainly(
    web: Api,
) -> None:
    owner, headers = web.new_user(email="olga@example.com")
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET name = 'Olga K' WHERE id = :o"), {"o": owner})
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    web.client.post("/console/team/invites", data={"csrf": token, "email": "fay@example.com"},
                    headers=headers)
    invite = web.last_token()
    _, other = web.new_user(email="gus@example.com")
    page = web.client.get("/console/invites/accept", params={"token": invite}, headers=other)
    assert page.status_code == 200, (invite, visible(page.text)[-300:])
    said = visible(page.text)
    assert "Olga K (olga@example.com) invited fay@example.com" in " ".join(said.split())
    assert "You are signed in as" in said and "gus@example.com" in said
    assert 'id="invite-other"' in page.text and 'action="/console/invites/accept"' not in page.text
    unknown = web.client.get("/console/invites/accept?token=" + "x" * 40, headers=other)
    assert "This invite link is not valid" in unknown.text


def test_a_monthly_budget_is_refused_in_the_forms_words(web: Api) -> None:
    owner, headers = web.new_user()
    member, _ = web.new_user()
    join(web.db, owner, member, "Mo")
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    for typed, words in (("-3", "A monthly budget must be a positive amount, for example 50.00"),
                         ("0", "A monthly budget must be a positive amount"),
                         ("ten", "A monthly budget must be an amount in USD"),
                         ("1.234", "at most two decimals")):
        r = web.client.post("/console/team/budgets", headers=headers, data={
            "csrf": token, "member_id": member, "monthly_budget": typed})
        assert r.status_code == 422, typed
        assert words in r.text, (typed, visible(r.text)[-800:])
        assert "monthly_budget" not in visible(r.text) and "999999999999" not in r.text
    with web.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsplane.member_budgets")).scalar() == 0


# --- organizations -------------------------------------------------------------------


def test_a_person_is_taken_out_of_an_organization_and_stays_in_the_team(web: Api) -> None:
    owner, headers = web.new_user()
    member, member_headers = web.new_user(email="kim@example.com")
    join(web.db, owner, member, "Kim")
    token = csrf_of(web.client.get("/console/organizations", headers=headers).text)
    org = web.client.post("/console/organizations", data={"csrf": token, "name": "ML"},
                          headers=headers, follow_redirects=False).headers["location"]
    web.client.post(org + "/members", data={"csrf": token, "email": "kim@example.com",
                                            "role": "member"}, headers=headers)
    page = web.client.get(org, headers=headers)
    assert "Remove Kim" in page.text
    path = f"{org}/members/{quote(member, safe='')}/remove"
    # a plain member of the organization may not (the API's OrgManagerDep)
    assert web.client.post(path, headers=member_headers, data={"csrf": token}).status_code == 403
    unknown = web.client.post(f"{org}/members/auth0%7Cnobody/remove", headers=headers,
                              data={"csrf": token})
    assert unknown.status_code == 404 and "not in this organization" in unknown.text
    assert "kim@example.com" in web.client.get(org, headers=headers).text
    r = web.client.post(path, headers=headers, data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == org + "?notice=removed"
    after = web.client.get(r.headers["location"], headers=headers).text
    assert "Removed from the organization" in after and "kim@example.com" not in after
    assert owner_of(web.db, member) == owner  # still in the team
    # a name nobody in the team has: the words say what to do
    r = web.client.post(org + "/members", headers=headers, data={
        "csrf": token, "email": "zed@example.com", "role": "member"})
    assert r.status_code == 404 and "invite them on the Team page" in r.text


def test_the_organization_chart_is_the_account_chart_with_the_same_colours(web: Api) -> None:
    owner, headers = web.new_user(email="olga@example.com")
    member, _ = web.new_user(email="kim@example.com")
    join(web.db, owner, member, "Kim")
    today = date.today()
    with web.db.transaction() as s:
        for n in range(1, 4):
            upsert_usage(s, owner, today - timedelta(days=n), "30000",
                         {owner: "10000", member: "20000"})
    token = csrf_of(web.client.get("/console/organizations", headers=headers).text)
    org = web.client.post("/console/organizations", data={"csrf": token, "name": "ML"},
                          headers=headers, follow_redirects=False).headers["location"]
    web.client.post(org + "/members", data={"csrf": token, "email": "kim@example.com",
                                            "role": "member"}, headers=headers)
    account = web.client.get("/console/usage", headers=headers).text
    organization = web.client.get(org, headers=headers).text

    def colour(html: str, who: str) -> str:
        found = re.search(r'<span class="swatch (c\d+)" aria-hidden="true"></span>'
                          + re.escape(who), html)
        assert found, who
        return found.group(1)

    assert colour(account, "Kim (kim@example.com)") == colour(organization,
                                                               "Kim (kim@example.com)")
    for html in (account, organization):  # axes and dates, a wide and a phone drawing
        assert 'class="chart-wide"' in html and 'class="chart-narrow"' in html
        assert '<line class="axis' in html and 'class="tick"' in html
        assert (today - timedelta(days=1)).strftime("%b") in html


# --- platform admins -----------------------------------------------------------------


def test_admin_lists_accounts_changes_cluster_status_and_places_an_account(web: Api) -> None:
    owner, _ = web.new_user(email="cus@example.com")
    _, admin = web.new_user(admin=True)
    _, nobody = web.new_user()
    page = web.client.get("/console/admin", headers=admin)
    assert page.status_code == 200 and "cus@example.com" in page.text
    assert f'href="/console/admin/accounts/{quote(owner, safe="")}"' in page.text
    assert 'id="no-clusters"' in page.text
    token = csrf_of(page.text)
    r = web.client.post("/console/admin/clusters", headers=admin, follow_redirects=False, data={
        "csrf": token, "name": "eu-1", "api_url": "https://eu-1.example.com",
        "api_key": "admin-key", "auth_api_key": "auth-key", "max_users": "10"})
    assert r.status_code == 303
    with web.db.transaction() as s:
        cid = s.execute(text("SELECT id FROM hopsworks_clusters")).scalar_one()

    def status() -> str:
        with web.db.transaction() as s:
            return str(s.execute(text("SELECT status FROM hopsworks_clusters")).scalar_one())

    assert web.client.post(f"/console/admin/clusters/{cid}/drain", headers=nobody,
                           data={"csrf": token}).status_code == 403
    bad = web.client.post(f"/console/admin/clusters/{cid}/explode", headers=admin,
                          data={"csrf": token})
    assert bad.status_code == 404 and status() == "active"
    r = web.client.post(f"/console/admin/clusters/{cid}/drain", headers=admin,
                        data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and status() == "draining"
    assert "Activate eu-1" in web.client.get("/console/admin", headers=admin).text

    account_path = f"/console/admin/accounts/{quote(owner, safe='')}"
    for typed in ("", "not-a-uuid"):
        r = web.client.post(account_path + "/cluster", headers=admin,
                            data={"csrf": token, "cluster_id": typed})
        assert r.status_code == 422 and "Pick the cluster" in r.text
    r = web.client.post(account_path + "/cluster", headers=admin,
                        data={"csrf": token, "cluster_id": str(uuid.uuid4())})
    assert r.status_code == 404
    with web.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM account_clusters")).scalar() == 0
    r = web.client.post(account_path + "/cluster", headers=admin, follow_redirects=False,
                        data={"csrf": token, "cluster_id": str(cid)})
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=cluster-assigned")
    shown = web.client.get(account_path, headers=admin).text
    assert "eu-1 (draining)" in shown
    # the customer's home names the cluster and opens their project there
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET hopsworks_project_id = 42 WHERE id = :o"), {"o": owner})
    home = web.client.get("/console", headers=web.auth(owner, "cus@example.com")).text
    assert 'href="https://eu-1.example.com/p/42/view"' in home and "in Hopsworks" in home


def test_no_cluster_yet_says_why(web: Api) -> None:
    _, headers = web.new_user()
    _, admin = web.new_user(admin=True)
    home = web.client.get("/console", headers=headers).text
    assert 'data-why="none-registered"' in home
    assert "no Hopsworks cluster has been added to this service" in home
    # a cluster exists but nobody runs the queue: the job placing the account waits
    with web.db.transaction() as s:
        make_cluster(s)
        worker.enqueue(s, "clusters.walk", run_at=datetime.now(UTC) - timedelta(minutes=5))
    home = web.client.get("/console", headers=headers).text
    assert 'data-why="no-worker"' in home and "background worker" in home
    assert 'id="worker-stopped"' in web.client.get("/console/admin", headers=admin).text


# --- words ---------------------------------------------------------------------------


def test_the_ledger_and_its_csv_read_in_names_and_currency(web: Api) -> None:
    owner, headers = web.new_user()
    with web.db.transaction() as s:
        credits.grant(s, owner, "20.00", reason="welcome", origin=AdminGrant("a1"),
                      granted_by="dev|0f6cb1234abc")
        credits.grant(s, owner, "5.00", reason="sorry for the outage",
                      origin=OperatorGrant("o1"), granted_by="cli")
        post(s, owner, EntryType.USAGE, "-1.20", description=usage_description(
            date(2026, 12, 7), Decimal(12000), Decimal("1.20"), Decimal(0)))
        post(s, owner, EntryType.USAGE, "-0.40", description=usage_description(
            date(2026, 12, 6), Decimal(16000), Decimal("1.60"), Decimal("1.20")))
    ledger = web.client.get("/console/ledger", headers=headers)
    said = " ".join(visible(ledger.text).split())
    assert "Credit granted by Support: welcome" in said
    assert "Credit granted by the operators: sorry for the outage" in said
    assert "Compute on 7 Dec 2026: 1.20 CPU-hours, $1.20" in said
    assert "Compute on 6 Dec 2026, reported late: 1.60 CPU-hours, $1.60, of which $1.20 was " \
           "charged before" in said
    assert not ID_PATTERNS.search(said), ID_PATTERNS.findall(said)
    exported = web.client.get("/console/ledger.csv", headers=headers).text
    assert not ID_PATTERNS.search(exported), ID_PATTERNS.findall(exported)
    descriptions = [r["description"] for r in csv.DictReader(io.StringIO(exported))]
    assert "Credit granted by Support: welcome" in descriptions
    assert "stripe_payment_intent_id" not in exported.splitlines()[0]


def test_words_of_every_entry_type_carry_no_id() -> None:
    stored = {
        EntryType.PURCHASE: "Stripe top-up 20.00 USD paid for account auth0|abc123def, whose "
                            "owner has joined this one",
        EntryType.REFUND: f"refund of {uuid.uuid4()}: duplicate (by auth0|0f6cb1234)",
        EntryType.EXPIRY: f"expiry of what was left of grant {uuid.uuid4()}",
        EntryType.DISPUTE: "Stripe dispute dp_123 of pi_456",
        EntryType.DISPUTE_REVERSAL: "Stripe dispute dp_123 won: funds reinstated",
        EntryType.GRANT: "legacy balance: free credits",
        EntryType.USAGE: "usage 2026-12-07: 12000 units, 1.20",
    }
    for kind, text_ in stored.items():
        said = wording.describe(kind, text_, "eur")
        assert not ID_PATTERNS.search(said) and "dp_" not in said, (kind, said)
        assert wording.kind(kind)[0].isupper()
    assert wording.describe(EntryType.USAGE, stored[EntryType.USAGE], "eur") == \
        "Compute on 7 Dec 2026: 1.20 CPU-hours, €1.20"


def test_a_new_account_is_kind_a_suspended_one_has_no_runway_and_help_is_named(
    plain: Api,
) -> None:
    owner, headers = plain.new_user()
    home = plain.client.get("/console", headers=headers).text
    assert 'data-state="no_credits"' in home and "In good standing, with no credits yet" in home
    assert "Out of credits" not in home and '<span class="suspended">' not in home
    # no card payments: who to write to, by address
    assert 'href="mailto:help@hops.test"' in home and "the team that runs" not in home
    topup = plain.client.get("/console/auto-topup", headers=headers).text
    assert 'id="payments-off"' in topup and "Card payments are off" in topup
    assert "help@hops.test" in topup
    with plain.db.transaction() as s:
        credits.grant(s, owner, "1.00", reason="start", origin=AdminGrant("s"))
        for n in range(1, 8):
            upsert_usage(s, owner, date.today() - timedelta(days=n), "10000", {owner: "10000"})
        post(s, owner, EntryType.USAGE, "-3.00", description="usage")
        s.execute(text("UPDATE hopsplane.account_standing SET suspended = true "
                       "WHERE account_owner_id = :o"), {"o": owner})
    home = plain.client.get("/console", headers=headers).text
    assert "Suspended" in home and "0 days" not in home and "last about" not in home


def test_form_and_range_errors_are_sentences_without_a_status_title(web: Api) -> None:
    _, headers = web.new_user()
    token = csrf_of(web.client.get("/console", headers=headers).text)
    for typed, words in (("1", "The amount must be at least $5.00."),
                         ("abc", "The amount must be an amount in USD"),
                         ("", "The amount is empty")):
        r = web.client.post("/console/topup", data={"csrf": token, "amount": typed},
                            headers=headers)
        assert r.status_code == 422 and words in r.text, (typed, visible(r.text)[-600:])
    for title in ("Page not found:", "Please check what you entered:", "That cannot be done"):
        assert title not in r.text
    backwards = web.client.get("/console/usage", params={"from": "2026-11-24",
                                                         "to": "2026-11-01"}, headers=headers)
    assert "The end date is before the start date" in backwards.text
    too_long = web.client.get("/console/usage", params={"from": "2024-01-01",
                                                        "to": "2026-01-01"}, headers=headers)
    assert too_long.status_code == 422 and "at most 366 days" in too_long.text


# --- both widths: what the server draws for each --------------------------------------


def test_every_table_a_customer_reads_folds_into_cards_with_labels(web: Api) -> None:
    """At 390 px the stylesheet shows each row of a ``cards`` table as a card whose cells
    carry their heading (``data-label``), so no money column is cut; the browser walk
    measures it, this checks what the server sends."""
    owner, headers = web.new_user()
    member, _ = web.new_user()
    join(web.db, owner, member, "Mo")
    with web.db.transaction() as s:
        credits.grant(s, owner, "20.00", reason="welcome", origin=AdminGrant("w"))
        upsert_usage(s, owner, date.today() - timedelta(days=1), "10000", {member: "10000"})
    web.client.post("/console/team/invites", headers=headers, data={
        "csrf": csrf_of(web.client.get("/console/team", headers=headers).text),
        "email": "new@example.com"})
    for path in ("/console/ledger", "/console/usage", "/console/team", "/console/organizations"):
        html = web.client.get(path, headers=headers).text
        for table in re.findall(r"<table[^>]*>.*?</table>", html, re.S):
            if "<thead>" not in table:
                continue
            assert 'class="cards' in table.split(">", 1)[0], (path, table[:120])
            body = table.split("<tbody>", 1)[-1]
            cells = re.findall(r"<td[^>]*>", body)
            assert cells and all("data-label=" in c for c in cells), (path, cells[:3])
    css = charts.__file__.replace("charts.py", "templates/console.css")
    with open(css, encoding="utf-8") as f:
        sheet = f.read()
    assert "table.cards td::before { content: attr(data-label)" in sheet
    assert ".chart svg.chart-wide { display: none; } .chart svg.chart-narrow { display: block; }" \
        in sheet
