"""Secrets in logs: live invite links never reach a log line. Without SMTP, development
shows the link to the inviting owner and logs only that an email was not sent; every other
environment refuses invites (503). The suite-wide grep (tests/secret_watch.py, run when the
session ends) checks every token and secret the suite created against every log line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from hopsplane.integrations.email import build_mailer
from tests import secret_watch
from tests.apps import Api, id_settings


def _api(db: Database, environment: str) -> Iterator[Api]:
    settings = id_settings(environment=environment, secret_key="k" * 40)
    app = create_app(settings, database=db)
    with TestClient(app) as client:
        api = Api(app, client)
        app.state.mailer = build_mailer(settings)  # as served: no SMTP configured
        yield api


@pytest.fixture
def dev(fresh_db: Database) -> Iterator[Api]:
    yield from _api(fresh_db, "development")


@pytest.fixture
def prod_like(fresh_db: Database) -> Iterator[Api]:
    yield from _api(fresh_db, "test")


def test_in_development_the_link_goes_to_the_owner_and_not_to_the_log(dev: Api) -> None:
    before = len(secret_watch.log_text())
    _, oh = dev.new_user()
    r = dev.client.post("/v1/team/invites", headers=oh, json={"email": "kai@example.com"})
    assert r.status_code == 201, r.text
    link = r.json()["accept_link"]
    token = link.split("token=")[1]
    assert len(token) >= 40
    logged = secret_watch.log_text()[before:]
    assert "email not sent" in logged and "kai@example.com" in logged
    assert token not in logged
    # the link works, and it is not listed afterwards
    listed = dev.client.get("/v1/team/invites", headers=oh).json()["items"]
    assert listed[0]["accept_link"] is None
    joined = dev.client.post("/v1/invites/accept", json={"token": token},
                             headers=dev.auth("auth0|kai", "kai@example.com"))
    assert joined.status_code == 200, joined.text
    # the console shows it to the owner too
    page = dev.client.get("/console/team", headers=oh).text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    shown = dev.client.post("/console/team/invites", headers=oh,
                            data={"csrf": csrf, "email": "lu@example.com"})
    assert shown.status_code == 201 and 'id="accept-link"' in shown.text
    console_token = shown.text.split("token=")[1].split('"')[0]
    assert console_token not in secret_watch.log_text()


def test_outside_development_invites_without_smtp_are_refused(prod_like: Api) -> None:
    owner, oh = prod_like.new_user()
    r = prod_like.client.post("/v1/team/invites", headers=oh, json={"email": "kai@example.com"})
    assert r.status_code == 503 and r.json()["error"] == "Unavailable"
    assert "HOPSPLANE_SMTP_HOST" in r.json()["detail"] and r.headers["retry-after"]
    with prod_like.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM team_invites WHERE account_owner_id = :o"),
                         {"o": owner}).scalar_one() == 0


def test_the_suite_wide_grep_finds_a_planted_secret() -> None:
    planted = "hpu_" + "planted-secret-0123456789"
    line = f'{{"event": "oops", "value": "{planted}"}}\n'
    assert secret_watch.found_in(line, {planted, "not-in-there-0000000"}) == [planted]
    assert secret_watch.found_in("nothing here", {planted}) == []
