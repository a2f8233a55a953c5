"""/v1/admin/clusters: admins only; secrets accepted, encrypted, never returned."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.errors import Unauthorized
from hopsplane.http.deps import Principal
from tests.factories import make_user

ADMIN = Principal("admin|1", "a@x.io", account_owner_id=None, is_platform_admin=True)
OWNER = Principal("owner|1", "o@x.io", account_owner_id=None, is_platform_admin=False)
MEMBER = Principal("member|1", "m@x.io", account_owner_id="owner|1", is_platform_admin=False)

BODY = {
    "name": "eu-1",
    "api_url": "https://eu-1.hopsworks.example.com/",
    "api_key": "super-secret-api-key",
    "auth_api_key": "super-secret-auth-key",
    "max_users": 2,
    "kubeconfig": "apiVersion: v1\nclusters: []\n",
    "prometheus_url": "http://prometheus.eu-1:9090",
}


@pytest.fixture
def client(fresh_db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, database=fresh_db)
    app.state.authenticator = lambda _r, _s: ADMIN
    with TestClient(app) as c:
        yield c


def _as(client: TestClient, principal: Principal) -> None:
    client.app.state.authenticator = lambda _r, _s: principal  # type: ignore[attr-defined]


def test_register_list_and_secrets_never_come_back(
    client: TestClient, fresh_db: Database, settings: Settings
) -> None:
    r = client.post("/v1/admin/clusters", json=BODY)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["api_url"] == "https://eu-1.hopsworks.example.com"
    assert out["prometheus_url"] == "http://prometheus.eu-1:9090"
    assert out["has_kubeconfig"] is True and out["status"] == "active"
    assert out["has_auth_api_key"] is True and "FEATURESTORE" in out["project_services"]
    assert (out["current_users"], out["free_capacity"]) == (0, 2)
    listed = client.get("/v1/admin/clusters").json()
    assert [c["id"] for c in listed["items"]] == [out["id"]] and listed["next_cursor"] is None
    for response in (r, client.get(f"/v1/admin/clusters/{out['id']}"),
                     client.get("/v1/admin/clusters")):
        assert "super-secret-api-key" not in response.text
        assert "super-secret-auth-key" not in response.text
        assert "apiVersion" not in response.text
    with fresh_db.transaction() as s:
        key, kube, auth, meta = s.execute(
            text("SELECT api_key, kubeconfig, auth_api_key, metadata FROM hopsworks_clusters")
        ).one()
    box = SecretBox(settings.effective_encryption_keys)
    assert box.decrypt(key) == "super-secret-api-key" and box.decrypt(kube).startswith("apiVersion")
    assert box.decrypt(auth) == "super-secret-auth-key" and "super-secret" not in auth
    assert meta == {"prometheus_url": "http://prometheus.eu-1:9090", "project_services": [
        "JOBS", "KAFKA", "JUPYTER", "HIVE", "SERVING", "FEATURESTORE", "AIRFLOW"]}
    r = client.patch(f"/v1/admin/clusters/{out['id']}",
                     json={"auth_api_key": "next-auth-key", "project_services": ["jobs", "JUPYTER"]})
    assert r.status_code == 200 and r.json()["project_services"] == ["JOBS", "JUPYTER"]
    assert "next-auth-key" not in r.text
    bad = client.patch(f"/v1/admin/clusters/{out['id']}", json={"project_services": ["NOTEBOOK"]})
    assert bad.status_code == 422 and "NOTEBOOK" in bad.json()["detail"]


def test_update_drain_disable_activate(client: TestClient) -> None:
    cid = client.post("/v1/admin/clusters", json=BODY).json()["id"]
    r = client.patch(f"/v1/admin/clusters/{cid}", json={"max_users": 5, "prometheus_url": ""})
    assert r.status_code == 200 and r.json()["max_users"] == 5 and r.json()["prometheus_url"] is None
    assert client.post(f"/v1/admin/clusters/{cid}/drain").json()["status"] == "draining"
    assert client.post(f"/v1/admin/clusters/{cid}/disable").json()["status"] == "disabled"
    assert client.post(f"/v1/admin/clusters/{cid}/activate").json()["status"] == "active"


def test_bad_input_is_a_clear_4xx_and_changes_nothing(client: TestClient) -> None:
    bad = client.post("/v1/admin/clusters", json={**BODY, "api_url": "ftp://x"})
    assert bad.status_code == 422 and bad.json()["error"] == "Invalid"
    neg = client.post("/v1/admin/clusters", json={**BODY, "max_users": -1})
    assert neg.status_code == 422
    assert client.get("/v1/admin/clusters").json()["items"] == []
    missing = client.get("/v1/admin/clusters/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    cid = client.post("/v1/admin/clusters", json=BODY).json()["id"]
    empty = client.patch(f"/v1/admin/clusters/{cid}", json={})
    assert empty.status_code == 422 and "nothing to update" in empty.json()["detail"]
    assert client.get("/v1/admin/clusters?cursor=garbage").status_code == 422


def test_admin_assigns_and_moves_an_account(client: TestClient, fresh_db: Database) -> None:
    a = client.post("/v1/admin/clusters", json={**BODY, "name": "a"}).json()["id"]
    b = client.post("/v1/admin/clusters", json={**BODY, "name": "b", "max_users": 1}).json()["id"]
    with fresh_db.transaction() as s:
        owner, other = make_user(s), make_user(s)
    r = client.post(f"/v1/admin/clusters/{a}/accounts", json={"account_owner_id": owner})
    assert r.status_code == 200 and r.json()["assigned_by"] == "admin|1"
    r = client.post(f"/v1/admin/clusters/{b}/accounts", json={"account_owner_id": owner})
    assert r.json()["hopsworks_cluster_id"] == b
    full = client.post(f"/v1/admin/clusters/{b}/accounts", json={"account_owner_id": other})
    assert full.status_code == 409 and full.json()["error"] == "Conflict"
    counts = {c["name"]: c["current_users"] for c in client.get("/v1/admin/clusters").json()["items"]}
    assert counts == {"a": 0, "b": 1}


def test_pagination_walks_every_cluster(client: TestClient) -> None:
    for i in range(5):
        client.post("/v1/admin/clusters", json={**BODY, "name": f"c{i}"})
    seen, cursor = [], None
    while True:
        page = client.get("/v1/admin/clusters", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i}" for i in range(5)]


@pytest.mark.parametrize("principal,status", [(OWNER, 403), (MEMBER, 403)])
def test_only_platform_admins(client: TestClient, principal: Principal, status: int) -> None:
    cid = client.post("/v1/admin/clusters", json=BODY).json()["id"]
    _as(client, principal)
    calls = [
        ("POST", "/v1/admin/clusters", BODY), ("GET", "/v1/admin/clusters", None),
        ("GET", f"/v1/admin/clusters/{cid}", None),
        ("PATCH", f"/v1/admin/clusters/{cid}", {"max_users": 9}),
        ("POST", f"/v1/admin/clusters/{cid}/drain", None),
        ("POST", f"/v1/admin/clusters/{cid}/disable", None),
        ("POST", f"/v1/admin/clusters/{cid}/activate", None),
        ("POST", f"/v1/admin/clusters/{cid}/accounts", {"account_owner_id": "x"}),
    ]
    for method, path, body in calls:
        assert client.request(method, path, json=body).status_code == status, (method, path)
    def anonymous(_r: object, _s: object) -> Principal:
        raise Unauthorized("not signed in")

    client.app.state.authenticator = anonymous  # type: ignore[attr-defined]
    assert client.get("/v1/admin/clusters").status_code == 401
