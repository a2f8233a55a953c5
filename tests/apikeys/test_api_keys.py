"""API keys over HTTP: created once and shown once, stored hashed, acting for their account
on the routes their scopes open and refused everywhere else; revoked, expired, malformed
and cross-account keys refused with the error shape."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from hopsplane.apikeys import rules
from tests import factories
from tests.apps import Api

ALL = [s.value for s in rules.Scope]


def _key(api: Api, headers: dict[str, str], scopes: list[str] | None = None,
         **extra: Any) -> dict[str, Any]:
    r = api.client.post("/v1/account/api-keys", headers=headers,
                        json={"name": "dashboard", "scopes": scopes or ALL, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_the_rules_of_a_key() -> None:
    key = rules.new_key()
    assert key.startswith("hpk_live_") and len(key) == 47 and rules.well_formed(key)
    flipped = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert not rules.well_formed(flipped)  # the checksum catches a typo
    assert not rules.well_formed(key + "x") and not rules.well_formed("hpk_live_")
    assert rules.digest(key) != rules.digest(flipped) and len(rules.digest(key)) == 64
    assert rules.new_key() != key


def test_a_key_is_shown_once_stored_hashed_and_reads_its_account(api: Api) -> None:
    owner, oh = api.new_user()
    with api.db.transaction() as s:
        factories.post(s, owner, "grant", "12.50")
    created = _key(api, oh, ["balance:read"], expires_in_days=30)
    secret = created["secret"]
    assert rules.well_formed(secret) and created["display_prefix"] == secret[:13]
    listed = api.client.get("/v1/account/api-keys", headers=oh).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert secret not in str(listed) and "secret" not in listed[0]
    with api.db.transaction() as s:
        stored = s.execute(text("SELECT token_sha256, last_used_at FROM hopsplane.api_keys"
                                " WHERE id = :i"), {"i": created["id"]}).one()
    assert stored.token_sha256 == rules.digest(secret) and stored.last_used_at is None

    r = api.client.get("/v1/account/balance", headers=_bearer(secret))
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == "12.50"
    with api.db.transaction() as s:
        first = s.execute(text("SELECT last_used_at FROM hopsplane.api_keys WHERE id = :i"),
                          {"i": created["id"]}).scalar_one()
    assert first is not None
    api.client.get("/v1/account/balance", headers=_bearer(secret))
    with api.db.transaction() as s:
        again = s.execute(text("SELECT last_used_at FROM hopsplane.api_keys WHERE id = :i"),
                          {"i": created["id"]}).scalar_one()
    assert again == first  # written at most once a minute


def test_a_key_is_refused_where_its_scopes_do_not_reach(api: Api) -> None:
    _owner, oh = api.new_user()
    _admin, ah = api.new_user(admin=True)
    secret = _key(api, oh, ["balance:read"])["secret"]
    k = _bearer(secret)
    lacking = api.client.get("/v1/account/ledger", headers=k)
    assert lacking.status_code == 403 and "ledger:read" in lacking.json()["detail"]
    for method, path in [
        ("GET", "/v1/me"),  # a person's profile
        ("GET", "/v1/admin/users"),  # admin routes: never
        ("GET", "/v1/admin/audit"),
        ("POST", "/v1/account/api-keys"),  # a key makes no keys
        ("GET", "/v1/account/api-keys"),
        ("GET", "/v1/account/audit"),
        ("POST", "/v1/team/invites"),
        ("GET", "/console"),
    ]:
        r = api.client.request(method, path, headers=k, json={} if method == "POST" else None)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        if not path.startswith("/console"):
            assert r.json()["error"] == "Forbidden"
    # an admin's own key is no admin either: it acts for the admin's account only
    admin_key = _key(api, ah)["secret"]
    assert api.client.get("/v1/admin/users", headers=_bearer(admin_key)).status_code == 403
    assert api.client.get("/v1/account/usage", headers=_bearer(admin_key),
                          params={"from": "2026-01-01", "to": "2026-01-02"}).status_code == 200


def test_a_key_of_one_account_never_reaches_another(api: Api) -> None:
    a, ah = api.new_user()
    b, bh = api.new_user()
    with api.db.transaction() as s:
        factories.post(s, a, "grant", "1.00")
        factories.post(s, b, "grant", "99.00")
    b_org = api.client.post("/v1/organizations", headers=bh, json={"name": "B's"}).json()["id"]
    a_org = api.client.post("/v1/organizations", headers=ah, json={"name": "A's"}).json()["id"]
    k = _bearer(_key(api, ah)["secret"])
    assert api.client.get("/v1/account/balance", headers=k).json()["balance"] == "1.00"
    ledger = api.client.get("/v1/account/ledger", headers=k).json()["items"]
    assert {e["account_owner_id"] for e in ledger} == {a}
    assert api.client.get(f"/v1/organizations/{a_org}/members", headers=k).status_code == 200
    other = api.client.get(f"/v1/organizations/{b_org}/members", headers=k)
    assert other.status_code == 404 and other.json()["error"] == "NotFound"
    assert [o["id"] for o in api.client.get("/v1/organizations", headers=k).json()] == [a_org]
    # B's owner cannot revoke A's key either
    key_id = api.client.get("/v1/account/api-keys", headers=ah).json()[0]["id"]
    assert api.client.delete(f"/v1/account/api-keys/{key_id}", headers=bh).status_code == 404
    assert api.client.get(f"/v1/admin/accounts/{b}/balance", headers=k).status_code == 403


def test_revoked_expired_malformed_and_orphaned_keys_are_refused(api: Api) -> None:
    owner, oh = api.new_user()
    revoked = _key(api, oh)
    r = api.client.delete(f"/v1/account/api-keys/{revoked['id']}", headers=oh)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert api.client.delete(f"/v1/account/api-keys/{revoked['id']}",
                             headers=oh).status_code == 200  # again: as it is
    expired = _key(api, oh, expires_in_days=1)
    with api.db.transaction() as s:
        s.execute(text("UPDATE hopsplane.api_keys SET created_at = now() - interval '2 days',"
                       " expires_at = now() - interval '1 second' WHERE id = :i"),
                  {"i": expired["id"]})
    good = rules.new_key()
    cases = {
        "revoked": revoked["secret"],
        "expired": expired["secret"],
        "unknown": good,  # well formed, never issued
        "bad checksum": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "truncated": revoked["secret"][:-3],
        "garbage": "hpk_live_" + "!" * 38,
        "empty body": "hpk_",
    }
    for why, token in cases.items():
        r = api.client.get("/v1/account/balance", headers=_bearer(token))
        assert r.status_code == 401, (why, r.status_code, r.text)
        assert r.json()["error"] == "Unauthorized", why
        assert len(token) < 10 or token not in r.text, why  # the key is never echoed
    # bad input on creation: 422 with the error shape
    for body in ({"name": "x", "scopes": ["admin:all"]}, {"name": "", "scopes": ALL},
                 {"name": "x", "scopes": []}, {"name": "x", "scopes": ALL,
                                               "expires_in_days": 0},
                 {"name": "x", "scopes": ALL, "expires_in_days": 10_000}):
        r = api.client.post("/v1/account/api-keys", headers=oh, json=body)
        assert r.status_code == 422 and "error" in r.json(), body
    # a key of an account that is gone (its owner joined another team) stops working
    orphan = _key(api, oh)["secret"]
    other, _ = api.new_user()
    with api.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :u"),
                  {"o": other, "u": owner})
    assert api.client.get("/v1/account/balance", headers=_bearer(orphan)).status_code == 401


def test_owners_and_organization_admins_manage_keys_members_do_not(api: Api) -> None:
    owner, oh = api.new_user()
    with api.db.transaction() as s:
        boss = factories.make_user(s, owner=owner)
        plain = factories.make_user(s, owner=owner)
    org = api.client.post("/v1/organizations", headers=oh, json={"name": "Ops"}).json()["id"]
    for who, role in ((boss, "admin"), (plain, "member")):
        r = api.client.put(f"/v1/organizations/{org}/members", headers=oh,
                           json={"email": f"{who[6:]}@example.com", "role": role})
        assert r.status_code == 200, r.text
    bh = api.auth(boss, f"{boss[6:]}@example.com")
    ph = api.auth(plain, f"{plain[6:]}@example.com")
    made = _key(api, bh, ["usage:read"])
    assert made["created_by"] == boss
    assert api.client.get("/v1/account/api-keys", headers=oh).json()[0]["id"] == made["id"]
    assert api.client.post("/v1/account/api-keys", headers=ph,
                           json={"name": "x", "scopes": ALL}).status_code == 403
    assert api.client.get("/v1/account/api-keys", headers=ph).status_code == 403


def test_the_spec_states_each_operations_scope(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    balance = spec["paths"]["/v1/account/balance"]["get"]
    assert balance["x-api-key-scope"] == "balance:read"
    assert {"apiKey": ["balance:read"]} in balance["security"]
    assert spec["paths"]["/v1/team/members"]["get"]["x-api-key-scope"] == "team:read"
    assert spec["paths"]["/v1/account/usage.csv"]["get"]["x-api-key-scope"] == "usage:read"
    for path, method in (("/v1/admin/users", "get"), ("/v1/account/api-keys", "post"),
                         ("/v1/me", "get")):
        op = spec["paths"][path][method]
        assert op["x-api-key-scope"] is None and "403" in op["responses"]
        assert not any("apiKey" in s for s in op["security"])
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_a_key_with_webhooks_manage_manages_its_own_accounts_endpoints_only(api: Api) -> None:
    a, ah = api.new_user()
    _b, bh = api.new_user()
    base = "/v1/account/webhooks"
    hook = {"url": "https://hooks.example.com/k", "event_types": ["low_balance"]}
    manage = _bearer(_key(api, ah, ["webhooks:manage"])["secret"])
    made = api.client.post(base, headers=manage, json=hook)
    assert made.status_code == 201, made.text
    assert made.json()["secret"].startswith("whsec_")  # shown once, to the key's program
    assert [e["id"] for e in api.client.get(base, headers=manage).json()] == [made.json()["id"]]
    assert [e["id"] for e in api.client.get(base, headers=ah).json()] == [made.json()["id"]]
    with api.db.transaction() as s:
        actor = s.execute(text(
            "SELECT actor_kind, account_owner_id FROM hopsplane.audit_log "
            "WHERE action = 'webhooks.endpoint_created' AND target = :t"),
            {"t": f"webhook_endpoint:{made.json()['id']}"}).one()
    assert tuple(actor) == ("api_key", a)  # recorded as the key's decision

    # without the scope: refused, naming it, before anything is read or written
    reader = _bearer(_key(api, ah, ["balance:read", "team:read"])["secret"])
    for method, path in [("GET", base), ("POST", base),
                         ("GET", "/v1/account/webhook-event-types"),
                         ("DELETE", f"{base}/{made.json()['id']}")]:
        r = api.client.request(method, path, headers=reader,
                               json=hook if method == "POST" else None)
        assert r.status_code == 403 and "webhooks:manage" in r.json()["detail"], (method, path)

    # a key of account A never touches B's endpoint
    theirs = api.client.post(base, headers=bh, json=hook).json()["id"]
    one = f"{base}/{theirs}"
    for method, path in [("DELETE", one), ("PATCH", one), ("POST", f"{one}/rotate-secret"),
                         ("POST", f"{one}/enable"), ("GET", f"{one}/deliveries")]:
        r = api.client.request(method, path, headers=manage,
                               json={"enabled": False} if method == "PATCH" else None)
        assert r.status_code == 404 and r.json()["error"] == "NotFound", (method, path)
    assert theirs not in str(api.client.get(base, headers=manage).json())
    assert [e["id"] for e in api.client.get(base, headers=bh).json()] == [theirs]
    assert api.client.get(base, headers=bh).json()[0]["enabled"]
    spec = api.client.get("/openapi.json").json()["paths"]
    assert spec[base]["post"]["x-api-key-scope"] == "webhooks:manage"
    assert {"apiKey": ["webhooks:manage"]} in spec[base]["post"]["security"]
