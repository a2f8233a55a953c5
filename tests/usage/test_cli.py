"""hopsplane usage ..., run in-process with the environment an operator would set."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.config import get_settings
from hopsplane.db.engine import Database
from tests.factories import TEST_ENCRYPTION_KEY, make_cluster, make_user
from tests.usage.fake_prometheus import FakePrometheus, fake_prometheus

runner = CliRunner()


@pytest.fixture
def env(env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOPSPLANE_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
    get_settings.cache_clear()
    return env


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    with fake_prometheus() as fake:
        yield fake


def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_issue_token_prints_it_once_and_stores_its_hash(env: str) -> None:
    db = Database(env)
    with db.transaction() as s:
        cluster = make_cluster(s)
    db.dispose()
    r = runner.invoke(app, ["usage", "issue-token", str(cluster)])
    assert r.exit_code == 0, r.output
    token = r.output.strip()
    assert token.startswith("hpu_") and len(token) > 40
    stored = _scalar(env, "SELECT token_sha256 FROM hopsplane.usage_ingest_tokens")
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    missing = runner.invoke(app, ["usage", "issue-token", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1 and "NotFound" in missing.output
    assert runner.invoke(app, ["usage", "issue-token", "nope"]).exit_code == 1


def test_collect_unmatched_and_refold(env: str, prom: FakePrometheus) -> None:
    db = Database(env)
    with db.transaction() as s:
        cluster = make_cluster(s, {"prometheus_url": prom.url})
        owner = make_user(s, cluster=cluster, project_id=3, project_name="Team_A")
    prom.values = {"team-a": "36", "stray": "3.6"}
    r = runner.invoke(app, ["usage", "collect", "--day", "2026-11-20", "--cluster", str(cluster)])
    assert r.exit_code == 0, r.output
    assert _scalar(env, "SELECT compute_units FROM usage_tracking") == Decimal(100)
    u = runner.invoke(app, ["usage", "unmatched"])
    assert "unknown namespace stray" in u.output and "1 shown" in u.output

    with db.transaction() as s:
        stray = make_user(s, cluster=cluster, project_id=4, project_name="stray")
    assert "folded 1 event(s); 0 still unmatched" in runner.invoke(app, ["usage", "refold"]).output
    assert _scalar(env, f"SELECT compute_units FROM usage_tracking WHERE account_owner_id = '{stray}'") == Decimal(10)

    again = runner.invoke(app, ["usage", "collect", "--day", "2026-11-20"])
    assert again.exit_code == 0, again.output
    assert _scalar(env, f"SELECT compute_units FROM usage_tracking WHERE account_owner_id = '{owner}'") == Decimal(100)
    bad = runner.invoke(app, ["usage", "collect", "--day", "20-11-2026"])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
    db.dispose()
