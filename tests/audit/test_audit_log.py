"""The audit log: each decision recorded once with who, before and after, in the decision's
transaction (a rolled-back decision leaves nothing); the database refuses to change it; an
account reads only its own log, platform admins all of it; the CLI prints it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hopsplane.audit import service as audit
from hopsplane.audit.actors import Actor, bind
from hopsplane.cli.main import app as cli
from hopsplane.credits import service as credits
from hopsplane.credits.origins import OperatorGrant
from hopsplane.db.engine import Database
from tests import factories
from tests.apps import Api

runner = CliRunner()


def _entries(db: Database, account: str | None = None, action: str | None = None
             ) -> list[dict[str, Any]]:
    with db.transaction() as s:
        return [e.model_dump(mode="json") for e in audit.entries(
            s, account_id=account, action=action, limit=500)]


def test_the_database_refuses_to_change_or_remove_an_entry(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        audit.record(s, "credits.grant", account_id=None, after={"amount": "1.00"})
    url = fresh_db.engine.url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("UPDATE hopsplane.audit_log SET action = 'credits.refund'",
                          "DELETE FROM hopsplane.audit_log",
                          "TRUNCATE hopsplane.audit_log"):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation,
                               match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM hopsplane.audit_log").fetchone() == (1,)


def test_a_rolled_back_decision_leaves_no_entry(fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = factories.make_user(s)

    class Refused(Exception):
        pass

    with pytest.raises(Refused), fresh_db.transaction() as s:
        bind(s, Actor.operator("ops"))
        credits.grant(s, owner, "5.00", reason="welcome", origin=OperatorGrant("k1"))
        assert len(audit.entries(s, account_id=owner)) == 1  # written, in the transaction
        raise Refused
    assert _entries(fresh_db, owner) == []
    with fresh_db.transaction() as s:
        bind(s, Actor.operator("ops"))
        credits.grant(s, owner, "5.00", reason="welcome", origin=OperatorGrant("k1"))
        credits.grant(s, owner, "5.00", reason="welcome", origin=OperatorGrant("k1"))  # replay
    [entry] = _entries(fresh_db, owner)
    assert entry["action"] == "credits.grant" and entry["actor_kind"] == "operator_cli"
    assert entry["actor_id"] == "ops" and entry["source"] == "cli"
    assert entry["after"]["amount"] == "5.00" and entry["before"] is None


def test_each_decision_over_http_is_recorded_once_as_the_persons(api: Api) -> None:
    owner, oh = api.new_user()
    admin, ah = api.new_user(admin=True)
    with api.db.transaction() as s:
        member = factories.make_user(s, owner=owner)
    member_email = f"{member[6:]}@example.com"

    invite = api.client.post("/v1/team/invites", headers=oh, json={"email": "new@example.com"})
    api.client.delete(f"/v1/team/invites/{invite.json()['id']}", headers=oh)
    api.client.put(f"/v1/account/budgets/{member}", headers=oh,
                   json={"monthly_budget": "50.00", "enforce": True})
    api.client.put(f"/v1/account/budgets/{member}", headers=oh,
                   json={"monthly_budget": "80.00", "enforce": True})
    api.client.put(f"/v1/account/budgets/{member}", headers=oh,  # no change: no entry
                   json={"monthly_budget": "80.00", "enforce": True})
    org = api.client.post("/v1/organizations", headers=oh, json={"name": "Ops"}).json()["id"]
    api.client.put(f"/v1/organizations/{org}/members", headers=oh,
                   json={"email": member_email, "role": "member"})
    api.client.put(f"/v1/organizations/{org}/members", headers=oh,
                   json={"email": member_email, "role": "billing"})
    key = api.client.post("/v1/account/api-keys", headers=oh,
                          json={"name": "bi", "scopes": ["usage:read"]}).json()
    api.client.delete(f"/v1/account/api-keys/{key['id']}", headers=oh)
    r = api.client.post(f"/v1/admin/accounts/{owner}/grants", headers=ah,
                        json={"amount": "7.00", "reason": "goodwill", "idempotency_key": "g1"})
    assert r.status_code == 201, r.text
    api.client.post(f"/v1/admin/accounts/{owner}/grants", headers=ah,  # a retry: no entry
                    json={"amount": "7.00", "reason": "goodwill", "idempotency_key": "g1"})

    found = _entries(api.db, owner)
    actions = [e["action"] for e in reversed(found)]
    assert actions == [
        "teams.invite_sent", "teams.invite_revoked", "budgets.set", "budgets.set",
        "organizations.created", "organizations.role_set", "organizations.role_set",
        "api_keys.created", "api_keys.revoked", "credits.grant",
    ], actions
    by_action: dict[str, list[dict[str, Any]]] = {}
    for e in reversed(found):
        by_action.setdefault(e["action"], []).append(e)
    first, second = by_action["budgets.set"]
    assert first["before"] is None and first["after"] == {"monthly_budget": "50.00",
                                                          "enforce": True}
    assert second["before"] == {"monthly_budget": "50.00", "enforce": True}
    assert second["after"]["monthly_budget"] == "80.00"
    roles = by_action["organizations.role_set"]
    assert roles[0]["before"] is None and roles[1]["before"] == {"role": "member"}
    assert roles[1]["after"]["role"] == "billing"
    revoked = by_action["api_keys.revoked"][0]
    assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"]
    assert key["secret"] not in json.dumps(found)  # never the secret
    for e in found:
        if e["action"] == "credits.grant":
            assert (e["actor_kind"], e["actor_id"]) == ("person", admin)
        else:
            assert (e["actor_kind"], e["actor_id"]) == ("person", owner), e
            assert e["request_id"] and e["source"] == "testclient"


def test_an_account_reads_only_its_own_log_admins_read_all(api: Api) -> None:
    a, ah = api.new_user()
    b, bh = api.new_user()
    _admin, adh = api.new_user(admin=True)
    with api.db.transaction() as s:
        member = factories.make_user(s, owner=a)
    mh = api.auth(member, f"{member[6:]}@example.com")
    api.client.post("/v1/team/invites", headers=ah, json={"email": "a1@example.com"})
    api.client.post("/v1/team/invites", headers=bh, json={"email": "b1@example.com"})

    mine = api.client.get("/v1/account/audit", headers=ah).json()["items"]
    assert mine and {e["account_owner_id"] for e in mine} == {a}
    theirs = api.client.get("/v1/account/audit", headers=bh).json()["items"]
    assert theirs and {e["account_owner_id"] for e in theirs} == {b}
    assert api.client.get("/v1/account/audit", headers=mh).status_code == 403
    assert api.client.get("/v1/admin/audit", headers=ah).status_code == 403
    r = api.client.post(f"/v1/admin/users/{member}/sessions/revoke", headers=adh)
    assert r.status_code == 200, r.text
    key = api.client.post("/v1/account/api-keys", headers=ah,
                          json={"name": "k", "scopes": ["team:read"]}).json()["secret"]
    assert api.client.get("/v1/account/audit",
                          headers={"Authorization": f"Bearer {key}"}).status_code == 403
    every = api.client.get("/v1/admin/audit", headers=adh, params={"limit": 500}).json()
    assert {a, b} <= {e["account_owner_id"] for e in every["items"]}
    [signed_out] = [e for e in every["items"] if e["action"] == "sessions.revoked_everywhere"]
    assert signed_out["target"] == f"user:{member}" and signed_out["account_owner_id"] is None
    after = api.client.get("/v1/account/audit", headers=ah).json()["items"]
    assert all(e["action"] != "sessions.revoked_everywhere" for e in after)  # not the account's
    only_b = api.client.get("/v1/admin/audit", headers=adh, params={"account_id": b}).json()
    assert {e["account_owner_id"] for e in only_b["items"]} == {b}

    # filters and cursor paging
    sent = api.client.get("/v1/account/audit", headers=ah,
                          params={"action": "teams.invite_sent"}).json()["items"]
    assert [e["action"] for e in sent] == ["teams.invite_sent"]
    teams = api.client.get("/v1/account/audit", headers=ah, params={"action": "teams."})
    assert teams.status_code == 200
    page1 = api.client.get("/v1/account/audit", headers=ah, params={"limit": 1}).json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    page2 = api.client.get("/v1/account/audit", headers=ah,
                           params={"limit": 1, "cursor": page1["next_cursor"]}).json()
    assert page2["items"][0]["id"] < page1["items"][0]["id"]
    later = api.client.get("/v1/account/audit", headers=ah,
                           params={"since": "2999-01-01T00:00:00"})  # no zone: UTC
    assert later.status_code == 200 and later.json()["items"] == []
    for bad in ({"cursor": "x"}, {"action": "DROP TABLE"}, {"since": "yesterday"},
                {"actor_kind": "robot"}, {"limit": 0}):
        r = api.client.get("/v1/account/audit", headers=ah, params=bad)
        assert r.status_code == 422 and "error" in r.json(), bad

    # CSV: the same entries, before/after as JSON text
    r = api.client.get("/v1/account/audit.csv", headers=ah)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["account_owner_id"] for row in rows} == {a}
    assert any(row["action"] == "teams.invite_sent" and json.loads(row["after"])["email"]
               == "a1@example.com" for row in rows)


def test_the_cli_records_the_operator_and_prints_the_log(env: str) -> None:
    db = Database(env)
    try:
        with db.transaction() as s:
            owner = factories.make_user(s)
            cluster = factories.make_cluster(s)
    finally:
        db.dispose()
    email = f"{owner[6:]}@example.com"
    assert runner.invoke(cli, ["admins", "grant", email]).exit_code == 0
    assert runner.invoke(cli, ["clusters", "drain", str(cluster)]).exit_code == 0
    r = runner.invoke(cli, ["credits", "grant", owner, "3.00", "-r", "support"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["audit", "--json"])
    assert r.exit_code == 0, r.output
    entries = json.loads(r.output)
    admin = next(e for e in entries if e["action"] == "admins.granted")
    assert admin["actor_kind"] == "operator_cli" and admin["source"] == "cli"
    assert admin["before"] == {"is_platform_admin": False}
    assert admin["after"] == {"is_platform_admin": True}
    drained = next(e for e in entries if e["action"] == "clusters.status_set")
    assert drained["account_owner_id"] is None and drained["actor_kind"] == "operator_cli"
    assert (drained["before"], drained["after"]) == ({"status": "active"}, {"status": "draining"})
    r = runner.invoke(cli, ["audit", "--account", email, "--action", "credits.grant",
                            "--since", "2000-01-01", "--json"])
    assert r.exit_code == 0, r.output
    [grant] = json.loads(r.output)
    assert grant["account_owner_id"] == owner and grant["after"]["amount"] == "3.00"
    table = runner.invoke(cli, ["audit", "--account", owner])
    assert table.exit_code == 0 and "credits.grant" in table.output
    bad = runner.invoke(cli, ["audit", "--since", "yesterday"])
    assert bad.exit_code == 2 and "2026-12-01" in bad.output


def test_admin_money_decisions_and_joining_are_recorded_once(api: Api) -> None:
    owner, oh = api.new_user()
    admin, ah = api.new_user(admin=True)
    with api.db.transaction() as s:
        purchase = factories.post(s, owner, "purchase", "40.00").entry.id
    refund = {"purchase_id": str(purchase), "amount": "15.00", "reason": "unhappy",
              "idempotency_key": "r1"}
    for _ in range(2):  # a retry refunds once, and is recorded once
        r = api.client.post(f"/v1/admin/accounts/{owner}/refunds", headers=ah, json=refund)
        assert r.status_code in (200, 201), r.text
    price = {"effective_from": "2999-01-01", "unit_price": "0.0002", "reason": "deal"}
    assert api.client.post(f"/v1/admin/accounts/{owner}/price-overrides", headers=ah,
                           json=price).status_code == 201
    price["unit_price"] = "0.0003"
    assert api.client.post(f"/v1/admin/accounts/{owner}/price-overrides", headers=ah,
                           json=price).status_code == 201
    r = api.client.post("/v1/team/invites", headers=oh, json={"email": "joe@example.com"})
    invite = r.json()["id"]
    assert api.client.post(f"/v1/team/invites/{invite}/resend", headers=oh).status_code == 200
    joe = api.auth("auth0|joe", "joe@example.com")
    assert api.client.post("/v1/invites/accept", headers=joe,
                           json={"token": api.last_token()}).status_code == 200

    found = {e["action"]: e for e in reversed(_entries(api.db, owner))}  # newest wins
    counts = [e["action"] for e in _entries(api.db, owner)]
    assert counts.count("credits.refund") == 1
    assert counts.count("billing.price_override") == 2
    r_entry = found["credits.refund"]
    assert (r_entry["actor_kind"], r_entry["actor_id"]) == ("person", admin)
    assert r_entry["after"]["amount"] == "-15.00" and r_entry["after"]["reason"] == "unhappy"
    assert r_entry["after"]["purchase_id"] == str(purchase)
    p_entry = found["billing.price_override"]  # the newest of the two
    assert p_entry["before"]["unit_price"] == "0.000200"
    assert p_entry["after"]["unit_price"] == "0.0003"
    assert found["teams.invite_resent"]["before"]["email"] == "joe@example.com"
    joined = found["teams.member_joined"]
    assert joined["actor_id"] == "auth0|joe" and joined["after"]["account_owner_id"] == owner
