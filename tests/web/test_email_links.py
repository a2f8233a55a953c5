"""Every email hopsplane sends: rendered from templates with a text and an
HTML part, worded for the account's standing, and every link in it leads to a page that
exists (200 for the person it is meant for; signed out, a sign-in page or redirect)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from sqlalchemy import text

from hopsplane.billing import budgets
from hopsplane.billing.run import run_billing
from hopsplane.integrations.email import Email
from tests.apps import EMAIL_LINK, Api, csrf_of, email_links, link_problem
from tests.factories import RecordingHooks, make_user, post, send_notices, upsert_usage

PUBLIC = "http://console.test"


def _send_every_kind(web: Api) -> tuple[str, dict[str, str]]:
    """An invite, a low-balance notice above zero and one of a suspended account, sent
    through the code paths that send them in production."""
    owner, headers = web.new_user()
    token = csrf_of(web.client.get("/console/team", headers=headers).text)
    web.client.post("/console/team/invites", data={"csrf": token, "email": "fay@example.com"},
                    headers=headers)
    with web.db.transaction() as s:
        post(s, owner, "purchase", "12.00")
        upsert_usage(s, owner, date(2026, 11, 20), "50000")  # 5.00 -> 7.00, below $10
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    with web.db.transaction() as s:
        upsert_usage(s, owner, date(2026, 11, 21), "80000")  # 8.00 -> -1.00, suspended
        make_user(s)
    run_billing(web.db, date(2026, 11, 21), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    return owner, headers


def test_every_link_in_every_email_leads_to_a_page_that_exists(web: Api) -> None:
    """Every kind of email, signed out and (but the invite) as the owner. The suite's
    autouse check (tests/conftest.py) follows the links of every email any test sends,
    signed out."""
    _owner, headers = _send_every_kind(web)
    sent: list[Email] = web.mailer.sent
    assert len(sent) == 3, [m.subject for m in sent]
    assert _follow(web, sent, headers) == 3


def test_the_links_of_recovery_and_budget_notices_lead_to_pages_that_exist(web: Api) -> None:
    """The recovery and budget notices: back above the threshold (to the owner), a member's budget at
    80 % and 100 % (to the owner: the team page; to the member: their usage page)."""
    owner, headers = web.new_user()
    member, member_headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
        post(s, owner, "purchase", "12.00")
        upsert_usage(s, owner, date(2026, 11, 20), "50000", {member: "50000"})  # 5.00
        budgets.set_budget(s, owner, member, "5.00", enforce=True, hooks=RecordingHooks(),
                           today=date(2026, 11, 20))
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    with web.db.transaction() as s:
        post(s, owner, "purchase", "50.00")
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks())
    send_notices(web.db, web.mailer, public_url=PUBLIC)
    sent: list[Email] = web.mailer.sent
    subjects = sorted(m.subject for m in sent)
    assert len(sent) == 6 and any("back above" in s for s in subjects), subjects
    to_owner = [m for m in sent if m.to != f"{member.split('|')[1]}@example.com"]
    to_member = [m for m in sent if m not in to_owner]
    assert len(to_member) == 2
    assert _follow(web, to_owner, headers) == 4
    assert _follow(web, to_member, member_headers) == 2


def _follow(web: Api, sent: list[Email], headers: dict[str, str]) -> int:
    """Follow every link of ``sent``: signed out it leads to sign-in, signed in as the
    recipient (``headers``) to a page (200). Returns how many links were followed."""
    followed = 0
    for message in sent:
        assert message.html, f"{message.subject!r} has no HTML part"
        links = email_links(message)
        in_text, in_html = EMAIL_LINK.findall(message.body), EMAIL_LINK.findall(message.html)
        assert set(in_text) == set(in_html) == links, (message.subject, in_text, in_html)
        for link in links:
            assert link.startswith(PUBLIC + "/"), link
            assert link_problem(web.client, link) is None
            if "/invites/" not in link:  # an invite is for the invitee, not the owner
                path = urlsplit(link).path
                assert web.client.get(path, headers=headers).status_code == 200, link
            followed += 1
    return followed


def test_the_low_balance_email_speaks_to_the_standing(web: Api) -> None:
    _send_every_kind(web)
    above, suspended = web.mailer.sent[1], web.mailer.sent[2]
    assert "$7.00, at or below $10.00" in above.body and "When it reaches $0.00" in above.body
    assert "suspended" not in above.subject
    assert "is suspended: its credit balance is $-1.00" in suspended.body
    assert "When it reaches" not in suspended.body and "suspended" in suspended.subject
    assert "<strong>suspended</strong>" in (suspended.html or "")
    for m in (above, suspended):
        assert "/billing" not in m.body
