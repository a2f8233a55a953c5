"""POST /v1/usage/events and the admin's unmatched list, over HTTP, with every caller."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.http.deps import Principal
from hopsplane.usage import service
from tests.factories import make_cluster, make_user

ADMIN = Principal("admin", "a@x.io", account_owner_id=None, is_platform_admin=True)
OWNER = Principal("owner", "o@x.io", account_owner_id=None, is_platform_admin=False)
MEMBER = Principal("member", "m@x.io", account_owner_id="owner", is_platform_admin=False)


@pytest.fixture
def client(fresh_db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=fresh_db)) as c:
        yield c


def _as(client: TestClient, who: Principal | None) -> None:
    if who is None:
        client.app.state.authenticator = None  # type: ignore[attr-defined]
        del client.app.state.authenticator  # type: ignore[attr-defined]
    else:
        client.app.state.authenticator = lambda _r, _s: who  # type: ignore[attr-defined]


def _batch(account: str, *ids: str, units: object = "1.5") -> dict[str, object]:
    return {"events": [
        {"id": i, "account_id": account, "timestamp": "2026-11-20T10:00:00Z",
         "compute_units": units} for i in ids]}


def _units(db: Database, account: str) -> Decimal:
    with db.transaction() as s:
        value = s.execute(text(
            "SELECT compute_units FROM usage_tracking WHERE account_owner_id = :a"),
            {"a": account}).scalar_one_or_none()
    return Decimal(0) if value is None else Decimal(value)


def test_admins_post_events_and_a_repeat_changes_nothing(
    client: TestClient, fresh_db: Database
) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    _as(client, ADMIN)
    r = client.post("/v1/usage/events", json=_batch(owner, "a", "b"))
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "accepted": 2, "duplicates": 0, "unmatched": 0,
                        "days_updated": 1}
    again = client.post("/v1/usage/events", json=_batch(owner, "a", "b"))
    assert again.json()["duplicates"] == 2
    assert _units(fresh_db, owner) == Decimal(3)


def test_only_admins_and_cluster_agents_may_post(client: TestClient, fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        cluster = make_cluster(s)
        owner = make_user(s, cluster=cluster)
        token = service.issue_token(s, cluster)
    body = _batch(owner, "e1")
    _as(client, None)
    assert client.post("/v1/usage/events", json=body).status_code == 401
    for who in (OWNER, MEMBER):
        _as(client, who)
        r = client.post("/v1/usage/events", json=body)
        assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    bad = client.post("/v1/usage/events", json=body,
                      headers={"Authorization": "Bearer hpu_not-a-real-token"})
    assert bad.status_code == 401 and "ingestion token" in bad.json()["detail"]
    assert _units(fresh_db, owner) == 0

    r = client.post("/v1/usage/events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert _units(fresh_db, owner) == Decimal("1.5")
    with fresh_db.transaction() as s:
        stored = s.execute(text("SELECT token_sha256 FROM hopsplane.usage_ingest_tokens"))
        assert token not in str(stored.all())
        service.issue_token(s, cluster)  # replaces the old token
    old = client.post("/v1/usage/events", json=_batch(owner, "e2"),
                      headers={"Authorization": f"Bearer {token}"})
    assert old.status_code == 401


def test_bad_batches_are_422_and_store_nothing(client: TestClient, fresh_db: Database) -> None:
    with fresh_db.transaction() as s:
        owner = make_user(s)
    _as(client, ADMIN)
    float_units = client.post("/v1/usage/events", json=_batch(owner, "f", units=1.5))
    assert float_units.status_code == 422 and float_units.json()["error"] == "Invalid"
    both = _batch(owner, "ok", "g")
    both["events"][1]["cpu_seconds"] = "3"  # type: ignore[index]
    r = client.post("/v1/usage/events", json=both)
    assert r.status_code == 422 and "events[1] ('g')" in r.json()["detail"]
    assert client.post("/v1/usage/events", json={"events": []}).status_code == 422
    too_many = _batch(owner, *[str(i) for i in range(5001)])
    assert client.post("/v1/usage/events", json=too_many).status_code == 422
    assert _units(fresh_db, owner) == 0


def test_unmatched_events_are_listed_page_by_page_and_refolded(
    client: TestClient, fresh_db: Database
) -> None:
    _as(client, ADMIN)
    body = _batch("auth0|ghost", *[f"u{i}" for i in range(5)])
    assert client.post("/v1/usage/events", json=body).json()["unmatched"] == 5
    first = client.get("/v1/admin/usage/unmatched", params={"limit": 3}).json()
    assert [e["event_id"] for e in first["items"]] == ["u0", "u1", "u2"]
    assert first["items"][0]["problem"] == "unknown account auth0|ghost"
    rest = client.get("/v1/admin/usage/unmatched",
                      params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [e["event_id"] for e in rest["items"]] == ["u3", "u4"] and rest["next_cursor"] is None
    _as(client, OWNER)
    assert client.get("/v1/admin/usage/unmatched").status_code == 403
    assert client.post("/v1/admin/usage/refold").status_code == 403

    with fresh_db.transaction() as s:
        s.execute(text("INSERT INTO users (id, email) VALUES ('auth0|ghost', 'g@x.io')"))
    _as(client, ADMIN)
    assert client.post("/v1/admin/usage/refold").json() == {"folded": 5, "still_unmatched": 0}
    assert _units(fresh_db, "auth0|ghost") == Decimal("7.5")
