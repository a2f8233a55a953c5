"""Cluster credentials in the console and the API: admins register a cluster with both API keys (never
shown again) and replace them; an owner sees what a suspension stopped."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hopsplane.crypto import SecretBox
from tests.apps import Api, csrf_of


def test_admin_registers_a_cluster_with_both_keys_and_replaces_the_auth_key(web: Api) -> None:
    _, admin = web.new_user(admin=True)
    page = web.client.get("/console/admin", headers=admin)
    fields = {"csrf": csrf_of(page.text), "name": "eu-1", "api_url": "https://hw.example.com",
              "api_key": "admin-key-1", "auth_api_key": "auth-key-1", "max_users": "5"}
    bad = web.client.post("/console/admin/clusters", data={**fields, "api_url": "ftp://x"},
                          headers=admin)
    assert bad.status_code == 422 and "http(s) URL" in bad.text
    r = web.client.post("/console/admin/clusters", data=fields, headers=admin,
                        follow_redirects=False)
    assert r.status_code == 303, r.text
    listed = web.client.get("/console/admin", headers=admin)
    assert "eu-1" in listed.text and "admin-key-1" not in listed.text
    assert "auth-key-1" not in listed.text
    with web.db.transaction() as s:
        cid, auth = s.execute(text("SELECT id, auth_api_key FROM hopsworks_clusters")).one()
    box = SecretBox(web.app.state.settings.effective_encryption_keys)
    assert box.decrypt(auth) == "auth-key-1"
    empty = web.client.post(f"/console/admin/clusters/{cid}/keys",
                            data={"csrf": fields["csrf"]}, headers=admin)
    assert empty.status_code == 422 and "Type a new admin API key" in empty.text
    r = web.client.post(f"/console/admin/clusters/{cid}/keys",
                        data={"csrf": fields["csrf"], "auth_api_key": "auth-key-2"},
                        headers=admin, follow_redirects=False)
    assert r.status_code == 303
    with web.db.transaction() as s:
        auth = s.execute(text("SELECT auth_api_key FROM hopsworks_clusters")).scalar_one()
    assert box.decrypt(auth) == "auth-key-2"


def test_the_owner_sees_what_a_suspension_stopped_and_a_member_may_not(web: Api) -> None:
    owner, owner_headers = web.new_user()
    member, member_headers = web.new_user()
    with web.db.transaction() as s:
        s.execute(text("UPDATE users SET account_owner_id = :o WHERE id = :m"),
                  {"o": owner, "m": member})
        cid = s.execute(text(
            "INSERT INTO hopsworks_clusters (name, api_url, api_key) "
            "VALUES ('c', 'https://h', 'gAAAAAx') RETURNING id")).scalar_one()
        s.execute(text(
            "INSERT INTO hopsplane.stopped_workloads (account_owner_id, cluster_id, project_id, "
            "suspension, kind, ref, name, hopsworks_user) VALUES "
            "(:o, :c, 7, 's1', 'deployment', '701', 'fraud <model>', 'meb10000')"),
            {"o": owner, "c": cid})
    with pytest.raises(IntegrityError, match="auth_api_key_encrypted"), web.db.transaction() as s:
        s.execute(text("UPDATE hopsworks_clusters SET auth_api_key = 'plain-text-key'"))
    api = web.client.get("/v1/account/stopped-workloads", headers=owner_headers)
    assert api.status_code == 200
    [item] = api.json()
    assert (item["kind"], item["name"], item["project_id"]) == ("deployment", "fraud <model>", 7)
    assert web.client.get("/v1/account/stopped-workloads", headers=member_headers).status_code \
        == 403
    home = web.client.get("/console", headers=owner_headers)
    assert "Stopped while the account was suspended" in home.text
    assert "fraud &lt;model&gt;" in home.text


def test_the_admin_sees_an_accounts_stray_projects(web: Api) -> None:
    owner, _ = web.new_user()
    _, admin = web.new_user(admin=True)
    page = web.client.get(f"/console/admin/accounts/{owner}", headers=admin)
    assert page.status_code == 200 and "Stray projects" not in page.text
    with web.db.transaction() as s:
        s.execute(text(
            "UPDATE users SET metadata = metadata || CAST(:v AS jsonb) WHERE id = :o"),
            {"o": owner, "v": '{"hopsworks_stray_projects": [{"id": 140, "name": "side_lab", '
                              '"namespace": "side-lab", "creator": "meb10000"}]}'})
    page = web.client.get(f"/console/admin/accounts/{owner}", headers=admin)
    assert "Stray projects" in page.text
    assert "side_lab (id 140, namespace side-lab, owned by meb10000)" in page.text
