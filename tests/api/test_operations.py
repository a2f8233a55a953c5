from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database


@pytest.fixture
def client(fresh_db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=fresh_db)) as c:
        yield c


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_readiness_fails_when_the_database_is_unreachable(settings: Settings) -> None:
    dead = Database("postgresql://nobody@127.0.0.1:1/none", settings)
    with TestClient(create_app(settings, database=dead)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"] == "Unavailable" and r.json()["code"] == "unavailable"


def test_metrics_speak_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert 'hopsplane_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in r.text


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_errors_have_one_shape_and_a_request_id(client: TestClient) -> None:
    r = client.get("/no-such-route", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 404
    assert r.json() == {"error": "NotFound", "code": "not_found", "detail": "Not Found"}
    assert r.headers["x-request-id"] == "req-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_every_error_carries_a_stable_code(client: TestClient) -> None:
    cases = [
        client.post("/healthz"),  # 405
        client.get("/v1/me"),  # 401: no identity configured
        client.post("/v1/admin/accounts/x/grants", content=b"{not json"),  # 401 before parsing
        client.get("/v1/account/ledger", params={"limit": "many"}),
    ]
    for r in cases:
        body = r.json()
        assert r.status_code >= 400 and set(body) == {"error", "code", "detail"}, body
        assert body["code"] and body["code"] == body["code"].lower(), body
    assert cases[0].json()["code"] == "method_not_allowed"
    assert cases[1].json()["code"] == "unauthorized"


def test_the_openapi_schema_documents_the_codes_of_each_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"error", "code", "detail"}
    refunds = spec["paths"]["/v1/admin/accounts/{account_id}/refunds"]["post"]["responses"]
    assert "`insufficient_balance`" in refunds["409"]["description"]
    assert "`refund_exceeds_purchase`" in refunds["409"]["description"]
    assert "`not_found`" in refunds["404"]["description"]
    documented = 0
    for path in spec["paths"].values():
        for op in path.values():
            for status, response in op.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    assert "`code` is one of: `" in response["description"], (status, op)
                    documented += 1
    assert documented > 50


def test_guards_refuse_everyone_until_identity_is_configured(
    fresh_db: Database, settings: Settings
) -> None:
    from fastapi import APIRouter

    from hopsplane.http.deps import AdminDep, MemberDep, OwnerDep, Principal

    app = create_app(settings, database=fresh_db)
    router = APIRouter()

    @router.get("/t/member")
    def member(p: MemberDep) -> dict[str, str]:
        return {"id": p.user_id}

    @router.get("/t/owner")
    def owner(p: OwnerDep) -> dict[str, str]:
        return {"id": p.user_id}

    @router.get("/t/admin")
    def admin(p: AdminDep) -> dict[str, str]:
        return {"id": p.user_id}

    app.include_router(router)
    with TestClient(app) as c:
        for path in ("/t/member", "/t/owner", "/t/admin"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
        callers = {
            "member": Principal("m", "m@x.io", account_owner_id="o", is_platform_admin=False),
            "owner": Principal("o", "o@x.io", account_owner_id=None, is_platform_admin=False),
            "admin": Principal("a", "a@x.io", account_owner_id=None, is_platform_admin=True),
        }
        expected = {
            "member": {"/t/member": 200, "/t/owner": 403, "/t/admin": 403},
            "owner": {"/t/member": 200, "/t/owner": 200, "/t/admin": 403},
            "admin": {"/t/member": 200, "/t/owner": 200, "/t/admin": 200},
        }
        for who, principal in callers.items():
            app.state.authenticator = lambda _req, _s, p=principal: p
            for path, status in expected[who].items():
                assert c.get(path).status_code == status, (who, path)


def test_a_body_that_is_not_json_is_invalid_input(fresh_db: Database, settings: Settings) -> None:
    from fastapi import APIRouter
    from pydantic import BaseModel

    class Thing(BaseModel):
        name: str

    app = create_app(settings, database=fresh_db)
    router = APIRouter()

    @router.post("/t/things")
    def make(thing: Thing) -> dict[str, str]:
        return {"name": thing.name}

    app.include_router(router)
    with TestClient(app) as c:
        r = c.post("/t/things", content=b"\xff\x19{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422
        assert r.json() == {"error": "Invalid", "code": "invalid",
                            "detail": "the request body is not valid JSON"}
        assert c.post("/t/things", json={"name": "x"}).json() == {"name": "x"}

