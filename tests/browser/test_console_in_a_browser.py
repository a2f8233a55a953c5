"""The console in a real browser (Chromium driven by Playwright), against the app served
over HTTP by uvicorn and the local Auth0-like issuer: sign in through the issuer's page,
land back where the browser started, send an invite with the page's form (CSRF token,
session cookie), sign out with the button.

Chromium comes from Debian (/usr/bin/chromium; `.ci/run` installs it when missing). On a
machine without it the test is skipped, unless HOPSPLANE_REQUIRE_BROWSER=1 (as in CI), which
turns a missing browser into a failure."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from hopsplane.integrations.email import LogMailer
from tests.apps import id_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip() -> None:
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("no playwright (pip install -e '.[test]')")
    if missing:
        if os.environ.get("HOPSPLANE_REQUIRE_BROWSER") == "1":
            pytest.fail("browser test required but: " + "; ".join(missing))
        pytest.skip("; ".join(missing))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(fresh_db: Database) -> Iterator[str]:
    """The app on a real port, its public URL pointing at itself (for the sign-in callback)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(id_settings(public_url=base), database=fresh_db)
    app.state.mailer = LogMailer()  # no SMTP here; outside development invites need one
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_sign_in_invite_and_sign_out_in_chromium(served: str, fresh_db: Database) -> None:
    _browser_or_skip()
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
