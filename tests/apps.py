"""Apps under test: settings with the local development issuer, and :class:`Api`, a
TestClient that acts as people holding real access tokens. Imported by fixtures and tests
(never a conftest or another test module)."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.http.deps import Principal
from hopsplane.http.session_cookie import SESSION_COOKIE
from hopsplane.integrations.auth0 import LocalIssuer
from hopsplane.integrations.email import Email, LogMailer
from tests.factories import TEST_ENCRYPTION_KEY, RecordingHooks


def id_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "environment": "test",
        "secret_key": "s" * 40,
        "encryption_keys": TEST_ENCRYPTION_KEY,
        "auth_dev_issuer": True,
        "public_url": "http://console.test",
        "_env_file": None,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


class Api:
    """A TestClient plus helpers to act as someone with a real access token."""

    def __init__(self, app: FastAPI, client: TestClient) -> None:
        self.app, self.client = app, client
        self.hooks = RecordingHooks()
        app.state.account_hooks = self.hooks
        self.mailer = LogMailer()
        app.state.mailer = self.mailer

    @property
    def issuer(self) -> LocalIssuer:
        issuer = self.app.state.identity.dev_issuer
        assert issuer is not None
        return issuer

    @property
    def db(self) -> Database:
        db: Database = self.app.state.database
        return db

    def token(self, sub: str, email: str | None = None, verified: bool = True) -> str:
        return self.issuer.issue(sub, email=email or f"{sub.split('|')[-1]}@example.com",
                                 email_verified=verified)

    def auth(self, sub: str, email: str | None = None, verified: bool = True) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, email, verified)}"}

    def new_user(self, *, admin: bool = False, email: str | None = None) -> tuple[str, dict[str, str]]:
        """A user created by their first request; returns (id, headers)."""
        sub = f"auth0|{uuid.uuid4().hex[:12]}"
        headers = self.auth(sub, email)
        r = self.client.get("/v1/me", headers=headers)
        assert r.status_code == 200, r.text
        if admin:
            with self.db.transaction() as s:
                s.execute(text("UPDATE users SET is_platform_admin = true WHERE id = :id"),
                          {"id": sub})
        return sub, headers

    def last_token(self) -> str:
        body = self.mailer.sent[-1].body
        return body.split("token=")[1].split()[0]


def act_as(client: TestClient, user_id: str, owner: str | None = None) -> None:
    """Make every request of ``client`` come from ``user_id`` (no token needed)."""
    principal = Principal(user_id, f"{user_id}@example.com", account_owner_id=owner,
                          is_platform_admin=False)
    client.app.state.authenticator = lambda _req, _s: principal  # type: ignore[attr-defined]


# --- the browser sign-in, step by step ---


def start(api: Api, return_to: str = "/team") -> tuple[str, dict[str, str]]:
    r = api.client.get("/auth/login", params={"return_to": return_to}, follow_redirects=False)
    assert r.status_code == 302
    location = r.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return location, query


def authorize(location: str, email: str) -> dict[str, str]:
    r = httpx.get(location + "&" + urlencode({"login_hint": email}), follow_redirects=False)
    assert r.status_code == 302, r.text
    back = urlsplit(r.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://console.test/auth/callback"
    return {k: v[0] for k, v in parse_qs(back.query).items()}


def signed_in(api: Api, email: str) -> str:
    """Sign in through the browser flow (a browser with no cookies yet); returns the session
    cookie's value, which the client keeps."""
    api.client.cookies.clear()
    location, _ = start(api)
    api.client.get("/auth/callback", params=authorize(location, email), follow_redirects=False)
    return api.client.cookies[SESSION_COOKIE]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


# --- the app on a real port, for the browser tests -----------------------------------------

CHROMIUM = "/usr/bin/chromium"


def browser_or_skip() -> None:
    """Skip without Chromium or Playwright, unless HOPSPLANE_REQUIRE_BROWSER=1 (CI)."""
    import os
    import shutil

    import pytest

    chromium = shutil.which("chromium") or CHROMIUM
    missing = []
    if not os.path.exists(chromium):
        missing.append(f"no Chromium at {chromium} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("no playwright (pip install -e '.[test]')")
    if missing:
        if os.environ.get("HOPSPLANE_REQUIRE_BROWSER") == "1":
            pytest.fail("browser test required but: " + "; ".join(missing))
        pytest.skip("; ".join(missing))


class Served:
    """The app served by uvicorn on a free port, its public URL pointing at itself (for
    the sign-in callback). Use as a context manager."""

    def __init__(self, db: Database, **settings: object) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.base = f"http://127.0.0.1:{port}"
        from hopsplane.api.app import create_app

        self.app = create_app(id_settings(public_url=self.base, **settings), database=db)
        self.app.state.mailer = LogMailer()
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))

    def __enter__(self) -> Served:
        import threading
        import time

        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# --- links in emails ------------------------------------------------------------------------

EMAIL_LINK = re.compile(r"""https?://[^\s"'<>]+""")


def email_links(message: Email) -> set[str]:
    """Every link of a message, from its text part and its HTML part."""
    return set(EMAIL_LINK.findall(message.body)) | set(EMAIL_LINK.findall(message.html or ""))


def link_problem(client: TestClient, link: str) -> str | None:
    """Why following ``link`` (its path, on this app, signed out) does not reach a page that
    exists: None when it answers 200, redirects to the sign-in, or is the sign-in page."""
    parts = urlsplit(link)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    r = client.get(path, follow_redirects=False)
    if r.status_code == 200:
        return None
    if r.status_code in (302, 303, 307) and "/auth/login" in r.headers.get("location", ""):
        return None
    if r.status_code == 401 and "/auth/login" in r.text:
        return None
    return f"{link} -> {r.status_code} {r.headers.get('location', '')}".rstrip()
