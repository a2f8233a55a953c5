"""Signing in as a newcomer meets it: the development sign-in refuses, on its own page,
the addresses the app would refuse (special-use domains such as .test), and a server
without sign-in answers its sign-in link with a page that says what to set."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from hopsplane.accounts.rules import normalise_email
from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.integrations.auth0.dev_issuer import email_refusal
from hopsplane.web.security import CONSOLE_CSS
from tests.apps import Api, authorize, id_settings, start

ADDRESSES = ["a@x.test", "b@localhost", "c@printer.local", "d@x.invalid", "e@onion.onion",
             "ann@example.com", "bob@example.org", "Carl@Example.NET", "d@sub.example",
             "no-at-sign", "two@@example.com"]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_dev_sign_in_refuses_exactly_what_the_app_refuses(address: str) -> None:
    try:
        normalise_email(address)
        app_keeps = True
    except Invalid:
        app_keeps = False
    assert (email_refusal(address) is None) == app_keeps


def test_a_special_use_address_is_refused_on_the_sign_in_page(api: Api) -> None:
    location, _ = start(api)
    r = httpx.get(location + "&" + urlencode({"login_hint": "a@x.test"}),
                  follow_redirects=False)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "a@x.test cannot sign in" in r.text and "special-use or reserved name" in r.text
    assert 'value="a@x.test"' in r.text  # the form keeps what was typed, to correct it
    assert "location" not in r.headers  # no code, no token
    token = httpx.post(api.issuer.issuer + "dev/token", data={"email": "a@x.test"})
    assert token.status_code == 400
    assert "special-use" in token.json()["error_description"]
    # what it accepts, the app signs in
    back = authorize(location, "ann@example.com")
    assert api.client.get("/auth/callback", params=back,
                          follow_redirects=False).status_code == 302
    assert api.client.get("/v1/me").json()["email"] == "ann@example.com"


@pytest.fixture
def unconfigured(fresh_db: Database) -> TestClient:
    app = create_app(id_settings(auth_dev_issuer=False, environment="development"),
                     database=fresh_db)
    return TestClient(app)


def test_sign_in_without_configuration_is_a_page_saying_what_to_set(
    unconfigured: TestClient,
) -> None:
    with unconfigured as client:
        page = client.get("/auth/login", headers={"Accept": "text/html,*/*;q=0.8"},
                          follow_redirects=False)
        assert page.status_code == 503, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>Sign-in is not configured</h1>" in page.text
        assert "<code>HOPSPLANE_AUTH_DEV_ISSUER=true hopsplane serve</code>" in page.text
        assert "HOPSPLANE_AUTH0_CLIENT_ID" in page.text
        assert f"<style>{CONSOLE_CSS}</style>" in page.text  # the style its CSP allows
        api = client.get("/auth/login", headers={"Accept": "application/json"})
        assert api.status_code == 503
        assert api.json()["error"] == "Unavailable"
        assert "HOPSPLANE_AUTH_DEV_ISSUER=true" in api.json()["detail"]


def test_production_is_told_about_auth0_only(fresh_db: Database) -> None:
    settings = id_settings(auth_dev_issuer=False, environment="production",
                           public_url="https://console.example.com")
    with TestClient(create_app(settings, database=fresh_db)) as client:
        page = client.get("/auth/login", headers={"Accept": "text/html"})
    assert page.status_code == 503 and "HOPSPLANE_AUTH0_DOMAIN" in page.text
    assert "DEV_ISSUER" not in page.text
