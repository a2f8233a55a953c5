"""The console's API keys and audit log pages: a new key's secret is on the answer page
only, a revoked key stops working, the audit log shows who did both."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.apps import Api, csrf_of


def test_a_key_made_in_the_console_is_shown_once_and_revocable(api: Api) -> None:
    owner, oh = api.new_user()
    page = api.client.get("/console/api-keys", headers=oh)
    assert page.status_code == 200 and "No keys yet" in page.text
    csrf = csrf_of(page.text)
    refused = api.client.post("/console/api-keys", headers=oh,
                              data={"csrf": csrf, "name": "bi", "expires_in_days": "30"})
    assert refused.status_code == 422 and 'role="alert"' in refused.text  # no scope
    made = api.client.post("/console/api-keys", headers=oh, data={
        "csrf": csrf, "name": "bi", "scope:balance:read": "on", "expires_in_days": "30"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="secret">(hpk_live_[0-9A-Za-z]+)</code>', made.text)
    assert found, made.text
    secret = found.group(1)
    again = api.client.get("/console/api-keys", headers=oh)
    assert secret not in again.text and secret[:13] in again.text
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/account/balance", headers=bearer).status_code == 200
    key_id = api.client.get("/v1/account/api-keys", headers=oh).json()[0]["id"]
    r = api.client.post(f"/console/api-keys/{key_id}/revoke", headers=oh,
                        data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert api.client.get("/v1/account/balance", headers=bearer).status_code == 401

    audit = api.client.get("/console/audit", headers=oh)
    assert audit.status_code == 200
    assert "api_keys.created" in audit.text and "api_keys.revoked" in audit.text
    assert secret not in audit.text and f"person: {owner}" in audit.text
    only = api.client.get("/console/audit", headers=oh, params={"action": "api_keys.revoked"})
    assert "api_keys.revoked" in only.text and "api_keys.created" not in only.text
    # a member of the account sees neither page
    member, _ = api.new_user()
    with api.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
    mh = api.auth(member, f"{member[6:]}@example.com")
    assert api.client.get("/console/api-keys", headers=mh).status_code == 403
    assert api.client.get("/console/audit", headers=mh).status_code == 403


def test_platform_admins_read_every_accounts_log_in_the_console(api: Api) -> None:
    a, ah = api.new_user()
    b, bh = api.new_user()
    _admin, adh = api.new_user(admin=True)
    api.client.post("/v1/team/invites", headers=ah, json={"email": "a2@example.com"})
    api.client.post("/v1/team/invites", headers=bh, json={"email": "b2@example.com"})
    page = api.client.get("/console/admin/audit", headers=adh)
    assert page.status_code == 200 and a in page.text and b in page.text
    only_b = api.client.get("/console/admin/audit", headers=adh, params={"account_id": b})
    assert b in only_b.text and f"<td>{a}</td>" not in only_b.text
    assert api.client.get("/console/admin/audit", headers=ah).status_code == 403
    mine = api.client.get("/console/audit", headers=ah)
    assert "a2@example.com" in mine.text and "b2@example.com" not in mine.text
