"""Organizations: the owner groups the account's people and delegates with a role; an
organization's usage is its people's share; nothing reaches across accounts."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from tests.apps import Api, csrf_of
from tests.factories import upsert_usage


def email_of(web: Api, user_id: str) -> str:
    with web.db.transaction() as s:
        return str(s.execute(text("SELECT email FROM users WHERE id = :i"),
                             {"i": user_id}).scalar_one())


def test_roles_delegate_what_the_plan_says_and_no_more(web: Api) -> None:
    owner, oh = web.new_user()
    ann, ah = web.new_user()
    bob, bh = web.new_user()
    stranger, sh = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id IN (:a, :b)"),
                  {"o": owner, "a": ann, "b": bob})
        upsert_usage(s, owner, date(2026, 3, 2), "30000", {ann: "10000", bob: "15000",
                                                           owner: "5000"})
    r = web.client.post("/v1/organizations", json={"name": "Data team"}, headers=oh)
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    assert web.client.post("/v1/organizations", json={"name": "data TEAM"},
                           headers=oh).status_code == 409
    assert web.client.post("/v1/organizations", json={"name": "x"}, headers=ah).status_code == 403
    # before any role, Ann is a plain member: no ledger, no team, her own usage share
    assert web.client.get("/v1/account/ledger", headers=ah).status_code == 403
    assert web.client.get("/v1/team/members", headers=ah).status_code == 403
    assert web.client.get("/v1/account/auto-topup", headers=ah).status_code == 403
    assert web.client.get("/console/auto-topup", headers=ah).status_code == 403
    q = {"from": "2026-03-01", "to": "2026-03-03"}
    assert web.client.get("/v1/account/usage", params=q, headers=ah).json()["total_units"] \
        == "10000"
    put = f"/v1/organizations/{org}/members"
    assert web.client.put(put, json={"email": email_of(web, ann), "role": "billing"},
                          headers=oh).status_code == 200
    assert web.client.put(put, json={"email": email_of(web, stranger), "role": "member"},
                          headers=oh).status_code == 404  # not of this account
    assert web.client.put(put, json={"email": email_of(web, bob), "role": "boss"},
                          headers=oh).status_code == 422
    # billing: ledger and balance, not the team, not managing the organization
    assert web.client.get("/v1/account/ledger", headers=ah).status_code == 200
    assert web.client.get("/v1/account/balance", headers=ah).json()["account_owner_id"] == owner
    # ... and auto top-up of the owner's account, the consent recording that she agreed
    agreed = web.client.put("/v1/account/auto-topup", headers=ah, json={
        "threshold": "10.00", "amount": "20.00", "accept_terms": True})
    assert agreed.status_code == 200 and agreed.json()["account_owner_id"] == owner
    assert agreed.json()["consent"]["given_by"] == ann
    assert web.client.get("/console/auto-topup", headers=ah).status_code == 200
    assert web.client.get("/v1/team/members", headers=ah).status_code == 403
    assert web.client.put(put, json={"email": email_of(web, bob), "role": "member"},
                          headers=ah).status_code == 403
    # admin: the team, the whole account's usage, the organization's people and usage
    web.client.put(put, json={"email": email_of(web, ann), "role": "admin"}, headers=oh)
    members = web.client.get("/v1/team/members", headers=ah)
    assert members.status_code == 200 and {m["id"] for m in members.json()["items"]} == {ann, bob}
    assert web.client.get("/v1/account/usage", params=q, headers=ah).json()["total_units"] \
        == "30000.0000"
    assert web.client.put(put, json={"email": email_of(web, bob), "role": "member"},
                          headers=ah).status_code == 200
    usage = web.client.get(f"/v1/organizations/{org}/usage", params=q, headers=ah).json()
    assert usage["scope"] == "organization" and usage["total_units"] == "25000"
    csv_text = web.client.get(f"/v1/organizations/{org}/usage.csv", params=q, headers=ah).text
    lines = csv_text.splitlines()  # one row per member of the organization, by email
    assert sorted(line.split(",")[:3] for line in lines[1:]) == sorted([
        ["2026-03-02", email_of(web, ann), "10000"], ["2026-03-02", email_of(web, bob), "15000"]])
    # Bob (member role) sees the organization, not its usage; the stranger sees nothing
    assert [o["my_role"] for o in web.client.get("/v1/organizations", headers=bh).json()] \
        == ["member"]
    assert web.client.get(f"/v1/organizations/{org}/usage", params=q,
                          headers=bh).status_code == 403
    assert web.client.get(f"/v1/organizations/{org}/members", headers=sh).status_code == 404
    assert web.client.get(f"/v1/organizations/{org}/usage", params=q,
                          headers=sh).status_code == 404
    # someone who leaves the team holds no role any more
    assert web.client.delete(f"/v1/team/members/{ann}", headers=oh).status_code == 200
    # (she now owns a new, empty account of her own: its balance, not the old owner's)
    assert web.client.get("/v1/account/balance", headers=ah).json()["account_owner_id"] == ann
    assert web.client.get("/v1/organizations", headers=ah).json() == []
    assert {m["user_id"] for m in web.client.get(
        f"/v1/organizations/{org}/members", headers=oh).json()} == {bob}


def test_console_creates_an_organization_and_an_admin_uses_it(web: Api) -> None:
    owner, oh = web.new_user()
    ann, ah = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :a"),
                  {"o": owner, "a": ann})
    page = web.client.get("/console/organizations", headers=oh)
    assert "No organizations yet" in page.text
    token = csrf_of(page.text)
    blank = web.client.post("/console/organizations", data={"csrf": token, "name": "  "},
                            headers=oh)
    assert blank.status_code == 422 and 'role="alert"' in blank.text
    made = web.client.post("/console/organizations", data={"csrf": token, "name": "Research"},
                           headers=oh, follow_redirects=False)
    assert made.status_code == 303
    org_path = made.headers["location"]
    added = web.client.post(org_path + "/members", headers=oh, follow_redirects=False, data={
        "csrf": token, "email": email_of(web, ann), "role": "admin"})
    assert added.status_code == 303
    # Ann now has the Team and Ledger pages, and manages the organization
    ann_home = web.client.get("/console", headers=ah).text
    assert 'href="/console/team"' in ann_home and 'href="/console/ledger"' in ann_home
    assert web.client.get("/console/team", headers=ah).status_code == 200
    org_page = web.client.get(org_path, headers=ah)
    assert org_page.status_code == 200 and "Add or change role" in org_page.text
    assert "Usage of the last 30 days" in org_page.text
