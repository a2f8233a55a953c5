"""Where promotional credit shows and is made: the admin API and the CLI grant
it with an expiry, the balance endpoint and `accounts find` show how much is promotional
and when it expires, the 7-day notice is mailed once, the expiry job is scheduled."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from typer.testing import CliRunner

from hopsplane.cli.main import app as cli
from hopsplane.composition import jobs
from hopsplane.credits import expiry
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.credits.tasks import EXPIRE_TASK
from hopsplane.db.engine import Database
from hopsplane.integrations.email import LogMailer
from tests.apps import Api, csrf_of
from tests.factories import make_user, post, send_notices

runner = CliRunner()


def test_an_admin_grants_promotional_credit_and_the_owner_sees_it(api: Api) -> None:
    _, admin = api.new_user(admin=True)
    owner, headers = api.new_user()
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    body = {"amount": "15.00", "reason": "launch promo", "idempotency_key": "promo-1",
            "expires_at": expires.isoformat()}
    r = api.client.post(f"/v1/admin/accounts/{owner}/grants", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert datetime.fromisoformat(r.json()["entry"]["expires_at"]) == expires
    # the same key with another expiry is another posting: refused
    other = body | {"expires_at": (expires + timedelta(days=1)).isoformat()}
    assert api.client.post(f"/v1/admin/accounts/{owner}/grants", json=other,
                           headers=admin).status_code == 409
    with api.db.transaction() as s:
        post(s, owner, "purchase", "10.00")
    bal = api.client.get("/v1/account/balance", headers=headers).json()
    assert bal["balance"] == "25.00" and bal["promotional"] == "15.00"
    assert [(g["amount"], datetime.fromisoformat(g["expires_at"]))
            for g in bal["promotional_grants"]] == [("15.00", expires)]


def test_an_expiry_in_the_past_or_without_a_timezone_is_refused(api: Api) -> None:
    _, admin = api.new_user(admin=True)
    owner, _ = api.new_user()
    for i, expires in enumerate(("2020-01-01T00:00:00Z", "2099-01-01T00:00:00")):
        r = api.client.post(f"/v1/admin/accounts/{owner}/grants", headers=admin, json={
            "amount": "5.00", "reason": "promo", "idempotency_key": f"bad-{i}",
            "expires_at": expires})
        assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
    with api.db.transaction() as s:
        assert credits.entry_count(s, owner) == 0


def test_the_cli_grants_with_expires_and_accounts_find_shows_it(env: str,
                                                                  fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    day = (datetime.now(UTC) + timedelta(days=40)).date()
    g = runner.invoke(cli, ["credits", "grant", owner, "7.50", "-r", "trial",
                            "--expires", day.isoformat()])
    assert g.exit_code == 0, g.output
    assert f"{day.isoformat()}T00:00:00+00:00" in " ".join(g.output.split())
    found = runner.invoke(cli, ["accounts", "find", owner])
    assert f"promo $7.50 expires {day.isoformat()}" in " ".join(found.output.split())
    for bad in ("2020-01-01", "31/12/2099"):
        r = runner.invoke(cli, ["credits", "grant", owner, "1.00", "-r", "x", "--expires", bad])
        assert r.exit_code == 2, r.output
    with fresh_db.transaction() as s:
        assert credits.balance(s, owner) == Decimal("7.50")


def test_the_expiring_notice_is_mailed_once(fresh_db: Database) -> None:
    now = datetime.now(UTC)
    with fresh_db.transaction() as s:
        owner = make_user(s)
        credits.grant(s, owner, "4.00", reason="promo", origin=_key("n1"),
                      expires_at=now + timedelta(days=5))
        credits.grant(s, owner, "9.00", reason="promo", origin=_key("n2"),
                      expires_at=now + timedelta(days=20))
    mailer = LogMailer()
    for _ in range(3):  # the job runs every quarter of an hour; a retry is a run too
        with fresh_db.transaction() as s:
            expiry.notify_expiring(s)
        send_notices(fresh_db, mailer)
    mine = [m for m in mailer.sent if m.to == f"{owner[6:]}@example.com"
            and "promotional" in m.subject]
    assert len(mine) == 1, [m.subject for m in mailer.sent]
    assert "$4.00 of promotional credit expires" in mine[0].subject
    assert "Purchased credit never expires" in mine[0].body


def test_the_expiry_job_is_scheduled() -> None:
    assert EXPIRE_TASK in jobs.handlers()
    assert any(p.task == EXPIRE_TASK for p in jobs.periodic_tasks())


def _key(k: str) -> OperatorGrant:
    return OperatorGrant(k)


def test_the_console_grants_promotional_credit_and_home_shows_it(web: Api) -> None:
    owner, owner_headers = web.new_user()
    _, admin_headers = web.new_user(admin=True)
    account_path = f"/console/admin/accounts/{quote(owner, safe='')}"
    page = web.client.get(account_path, headers=admin_headers)
    day = (datetime.now(UTC) + timedelta(days=45)).date()
    fields = {"csrf": csrf_of(page.text),
              "key": re.search(r'name="key" value="([0-9a-f]{32})"', page.text).group(1),  # type: ignore[union-attr]
              "amount": "8.00", "reason": "welcome", "expires": "not a date"}
    bad = web.client.post(account_path + "/grant", data=fields, headers=admin_headers)
    assert bad.status_code == 422
    r = web.client.post(account_path + "/grant", data={**fields, "expires": day.isoformat()},
                        headers=admin_headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    home = web.client.get("/console", headers=owner_headers)
    assert 'id="promotional"' in home.text and f"expires on {day.isoformat()}" in home.text
    admin_page = web.client.get(account_path, headers=admin_headers)
    assert f"8.00 expires {day.isoformat()}" in admin_page.text
