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
    assert r.json()["error"] == "Unavailable"


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
    assert r.json() == {"error": "NotFound", "detail": "Not Found"}
    assert r.headers["x-request-id"] == "req-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
