"""`hopsplane clusters ...` and `hopsplane secrets rotate`, run in-process."""

import json

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.config import DEV_ENCRYPTION_KEY, get_settings
from hopsplane.crypto import SecretBox

runner = CliRunner()


@pytest.fixture
def env(env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("HOPSPLANE_ENCRYPTION_KEYS", raising=False)
    get_settings.cache_clear()
    return env


def _one(url: str, sql: str) -> object:
    engine = create_engine(url)
    with engine.begin() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


def test_add_list_update_drain_assign(env: str, tmp_path: object) -> None:
    r = runner.invoke(app, ["clusters", "add", "eu-1", "--api-url", "https://eu-1.example.com",
                            "--max-users", "3"], input="the-api-key\nthe-auth-key\n")
    assert r.exit_code == 0, r.output
    assert "the-api-key" not in r.output and "the-auth-key" not in r.output
    # no HOPSPLANE_ENCRYPTION_KEYS: the public development key, said loudly
    assert "WARNING" in r.output and "placeholder key" in r.output
    cid = str(_one(env, "SELECT id FROM hopsworks_clusters"))
    assert str(_one(env, "SELECT api_key FROM hopsworks_clusters")).startswith("gAAAAA")
    box = SecretBox([DEV_ENCRYPTION_KEY])
    assert box.decrypt(str(_one(env, "SELECT auth_api_key FROM hopsworks_clusters"))) == "the-auth-key"
    r = runner.invoke(app, ["clusters", "update", cid, "--prompt-auth-api-key",
                            "--project-services", "JOBS,FEATURESTORE"], input="auth-2\n")
    assert r.exit_code == 0 and "auth-2" not in r.output, r.output
    assert box.decrypt(str(_one(env, "SELECT auth_api_key FROM hopsworks_clusters"))) == "auth-2"
    assert _one(env, "SELECT metadata->'project_services' FROM hopsworks_clusters") == [
        "JOBS", "FEATURESTORE"]
    r = runner.invoke(app, ["clusters", "update", cid, "--prometheus-url", "http://prom:9090"])
    assert r.exit_code == 0, r.output
    assert _one(env, "SELECT metadata->>'prometheus_url' FROM hopsworks_clusters") == "http://prom:9090"
    _one(env, "INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com') RETURNING id")
    r = runner.invoke(app, ["clusters", "assign", "u1"])
    assert r.exit_code == 0 and "assigned by cli:" in r.output, r.output
    r = runner.invoke(app, ["clusters", "add", "eu-2", "--api-url", "https://eu-2.example.com",
                            "--max-users", "1", "--api-key", "k2"],
                       env={"HOPSPLANE_CLUSTER_AUTH_API_KEY": "auth-from-env"})
    assert r.exit_code == 0, r.output
    cid2 = str(_one(env, "SELECT id FROM hopsworks_clusters WHERE name = 'eu-2'"))
    r = runner.invoke(app, ["clusters", "assign", "u1", cid2, "--by", "ops|jane"])
    assert r.exit_code == 0, r.output
    assert _one(env, "SELECT assigned_by || ' ' || hopsworks_cluster_id FROM account_clusters") == f"ops|jane {cid2}"
    assert runner.invoke(app, ["clusters", "drain", cid]).exit_code == 0
    assert runner.invoke(app, ["clusters", "list"]).exit_code == 0
    assert _one(env, "SELECT string_agg(name || ' ' || status || ' ' || current_users, ', ' ORDER BY name) FROM hopsworks_clusters") == "eu-1 draining 0, eu-2 active 1"
    _one(env, "INSERT INTO users (id, email) VALUES ('u2', 'u2@example.com') RETURNING id")
    full = runner.invoke(app, ["clusters", "assign", "u2"])
    assert full.exit_code == 1 and "Unavailable" in full.output and "Traceback" not in full.output


def test_bad_input_is_a_message(env: str) -> None:
    r = runner.invoke(app, ["clusters", "add", "x", "--api-url", "not-a-url", "--api-key", "k",
                            "--auth-api-key", "a"])
    assert r.exit_code == 1 and "api_url must be an http(s) URL" in r.output
    r = runner.invoke(app, ["clusters", "drain", "00000000-0000-0000-0000-000000000000"])
    assert r.exit_code == 1 and "NotFound" in r.output
    assert _one(env, "SELECT count(*) FROM hopsworks_clusters") == 0


def test_secrets_rotate_reencrypts_under_the_first_key(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    kube = Path(str(tmp_path)) / "kubeconfig"
    kube.write_text("apiVersion: v1\n")
    r = runner.invoke(app, ["clusters", "add", "eu-1", "--api-url", "https://eu-1.example.com",
                            "--api-key", "k-123", "--kubeconfig", str(kube),
                            "--prometheus-url", "https://prom.example.com",
                            "--prometheus-username", "reader"],
                       env={"HOPSPLANE_CLUSTER_AUTH_API_KEY": "auth-123",
                            "HOPSPLANE_PROMETHEUS_PASSWORD": "prom-pw-123"})
    assert r.exit_code == 0, r.output
    assert "prom-pw-123" not in r.output
    assert _one(env, "SELECT metadata->>'prometheus_auth' FROM hopsworks_clusters") == "basic"
    stored = str(_one(env, "SELECT prometheus_auth FROM hopsworks_clusters"))
    assert stored.startswith("gAAAAA") and "prom-pw-123" not in stored
    new_key = SecretBox.generate_key()
    monkeypatch.setenv("HOPSPLANE_ENCRYPTION_KEYS", f"{new_key},{DEV_ENCRYPTION_KEY}")
    get_settings.cache_clear()
    r = runner.invoke(app, ["secrets", "rotate"])
    assert r.exit_code == 0 and "1 cluster" in r.output, r.output
    only_new = SecretBox([new_key])
    assert only_new.decrypt(str(_one(env, "SELECT api_key FROM hopsworks_clusters"))) == "k-123"
    assert only_new.decrypt(str(_one(env, "SELECT kubeconfig FROM hopsworks_clusters"))) == "apiVersion: v1\n"
    assert only_new.decrypt(str(_one(env, "SELECT auth_api_key FROM hopsworks_clusters"))) == "auth-123"
    assert json.loads(only_new.decrypt(str(_one(
        env, "SELECT prometheus_auth FROM hopsworks_clusters")))) == {
        "username": "reader", "password": "prom-pw-123"}
    # A key set that cannot read the secrets refuses and changes nothing.
    before = _one(env, "SELECT api_key FROM hopsworks_clusters")
    monkeypatch.setenv("HOPSPLANE_ENCRYPTION_KEYS", SecretBox.generate_key())
    r = runner.invoke(app, ["secrets", "rotate"])
    assert r.exit_code == 1 and "cannot be decrypted" in r.output
    assert _one(env, "SELECT api_key FROM hopsworks_clusters") == before
