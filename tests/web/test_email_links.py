"""Every email hopsplane sends (issue 14): rendered from templates with a text and an
HTML part, worded for the account's standing, and every link in it leads to a page that
exists (200 for the person it is meant for; signed out, a sign-in page or redirect)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from hopsplane.billing.run import run_billing
from hopsplane.integrations.email import Email
from tests.apps import EMAIL_LINK, Api, csrf_of, email_links, link_problem
from tests.factories import RecordingHooks, make_user, post, upsert_usage

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
    run_billing(web.db, date(2026, 11, 20), hooks=RecordingHooks(), mailer=web.mailer,
                public_url=PUBLIC)
    with web.db.transaction() as s:
        upsert_usage(s, owner, date(2026, 11, 21), "80000")  # 8.00 -> -1.00, suspended
        make_user(s)
    run_billing(web.db, date(2026, 11, 21), hooks=RecordingHooks(), mailer=web.mailer,
                public_url=PUBLIC)
    return owner, headers


def test_every_link_in_every_email_leads_to_a_page_that_exists(web: Api) -> None:
    """Every kind of email, signed out and (but the invite) as the owner. The suite's
    autouse check (tests/conftest.py) follows the links of every email any test sends,
    signed out."""
    _owner, headers = _send_every_kind(web)
    sent: list[Email] = web.mailer.sent
    assert len(sent) == 3, [m.subject for m in sent]
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
    assert followed == 3


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
