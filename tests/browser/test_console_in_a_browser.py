"""The console in a real browser (Chromium driven by Playwright), against the app served
over HTTP by uvicorn and the local Auth0-like issuer: sign in through the issuer's page,
land back where the browser started, send an invite with the page's form (CSRF token,
session cookie), sign out with the button.

Chromium comes from Debian (/usr/bin/chromium; `.ci/run` installs it when missing). On a
machine without it the test is skipped, unless HOPSPLANE_REQUIRE_BROWSER=1 (as in CI), which
turns a missing browser into a failure."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from hopsplane.db.engine import Database
from tests import apps

pytestmark = pytest.mark.slow  # a real browser


CHROMIUM = shutil.which("chromium") or apps.CHROMIUM


@pytest.fixture
def served(fresh_db: Database) -> Iterator[str]:
    """The app on a real port, its public URL pointing at itself (for the sign-in callback)."""
    with apps.Served(fresh_db) as server:
        yield server.base


def test_sign_in_invite_and_sign_out_in_chromium(served: str, fresh_db: Database) -> None:
    apps.browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(served + "/console/team")  # signed out: straight to sign in
            # the issuer's own page (another origin): any email signs in
            page.fill("input[name=login_hint]", "zoe@example.com")
            page.click("button")
            page.wait_for_url(served + "/console/team")
            assert "zoe@example.com" in page.inner_text("header")

            page.fill("input[name=email]", "yan@example.com")
            page.click("text=Send invite")
            page.wait_for_url(served + "/console/team?notice=invited")
            assert "Invite sent." in page.inner_text("main")
            assert "yan@example.com" in page.inner_text("main")

            page.click("text=Sign out")
            page.wait_for_url(served + "/console/signed-out")
            assert "You are signed out" in page.inner_text("main")
            page.goto(served + "/console")
            assert "login_hint" in page.content()  # the cookie is gone: sign in again
        finally:
            browser.close()

    with fresh_db.transaction() as s:
        invited = s.execute(text(
            "SELECT i.email FROM team_invites i JOIN users u ON u.id = i.account_owner_id "
            "WHERE u.email = 'zoe@example.com'")).scalars().all()
    assert invited == ["yan@example.com"]
