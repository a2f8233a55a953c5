"""`hopsplane clusters check ID`: calls the cluster with its stored keys and
says whether it is reachable, which Hopsworks it runs and whether each key has its scopes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.config import DEV_ENCRYPTION_KEY, get_settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from tests.factories import add_cluster, make_user

runner = CliRunner()


@pytest.fixture
def env(env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("HOPSPLANE_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("HOPSPLANE_HOPSWORKS_TIMEOUT_SECONDS", "5")
    get_settings.cache_clear()
    return env


def _cluster(url: str, api_url: str, **keys: str) -> str:
    db = Database(url)
    try:
        with db.transaction() as s:
            return str(add_cluster(s, SecretBox([DEV_ENCRYPTION_KEY]), "c1", api_url=api_url,
                                   **keys).id)  # type: ignore[arg-type]
    finally:
        db.dispose()


def test_a_healthy_cluster(env: str, hw: FakeHopsworks) -> None:
    r = runner.invoke(app, ["clusters", "check", _cluster(env, hw.url)])
    assert r.exit_code == 0, r.output
    assert "Hopsworks 3.8.0" in r.output and "FAIL" not in r.output
    assert r.output.count("ok ") == 5


def test_keys_without_their_scopes_and_an_old_version_fail(env: str) -> None:
    old = FakeHopsworks(version="3.6.0")
    try:
        cid = _cluster(env, old.url, api_key="hw-auth-key", auth_api_key="hw-secret-key")
        r = runner.invoke(app, ["clusters", "check", cid])
    finally:
        old.close()
    assert r.exit_code == 1, r.output
    assert "Hopsworks 3.6.0: provisioning needs 3.7" in r.output
    assert "FAIL admin key: users" in r.output and "FAIL admin key: projects" in r.output
    assert "hw-secret-key" not in r.output and "hw-auth-key" not in r.output


def test_the_auth_key_with_admin_scopes_only_fails(env: str, hw: FakeHopsworks) -> None:
    r = runner.invoke(app, ["clusters", "check",
                            _cluster(env, hw.url, auth_api_key="hw-secret-key")])
    assert r.exit_code == 1 and "FAIL AUTH key" in r.output, r.output
    assert "ok   admin key: users" in r.output


def test_an_unreachable_cluster(env: str) -> None:
    r = runner.invoke(app, ["clusters", "check", _cluster(env, "http://127.0.0.1:1")])
    assert r.exit_code == 1 and "FAIL reachable at http://127.0.0.1:1" in r.output, r.output
    assert "Traceback" not in r.output
    missing = runner.invoke(app, ["clusters", "check", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1 and "NotFound" in missing.output


def test_projects_an_accounts_user_owns_besides_the_accounts_are_listed(
    env: str, hw: FakeHopsworks
) -> None:
    cid = _cluster(env, hw.url)
    owner = hw.state.users[10001] = {
        "id": 10001, "email": "o@example.com", "username": "owner001", "firstname": "O",
        "lastname": "W", "status": "ACTIVATED_ACCOUNT", "maxNumProjects": 5}
    assert hw.create_project_as("owner001", "hp_account")[0] == 200
    assert hw.create_project_as("owner001", "side_lab")[0] == 200
    assert hw.create_project_as("admin", "admins_own")[0] == 200  # nobody's account
    account_project = next(p["id"] for p in hw.state.projects.values()
                           if p["name"] == "hp_account")
    db = Database(env)
    try:
        with db.transaction() as s:
            uid = make_user(s, cluster=uuid.UUID(cid), project_id=account_project)
            s.execute(text(
                "UPDATE users SET hopsworks_username = 'owner001', metadata = metadata || "
                "jsonb_build_object('hopsworks_cluster_id', CAST(:c AS text), "
                "'hopsworks_user_id', 10001) WHERE id = :u"), {"c": cid, "u": uid})
    finally:
        db.dispose()
    r = runner.invoke(app, ["clusters", "check", cid])
    assert r.exit_code == 0, r.output
    assert "stray project side_lab" in r.output and "owned by owner001" in r.output
    assert uid in r.output and "hp_account" not in r.output and "admins_own" not in r.output
    assert owner["maxNumProjects"] == 5  # check is read-only on the cluster


def test_a_certificate_problem_is_said_in_plain_words_and_a_ca_bundle_fixes_it(
    env: str, tmp_path: object,
) -> None:
    from pathlib import Path

    from tests.tls_certs import make_ca, server_context

    ca = make_ca()
    server = FakeHopsworks(ssl_context=server_context(ca))
    try:
        cid = _cluster(env, server.url)
        r = runner.invoke(app, ["clusters", "check", cid])
        assert r.exit_code == 1, r.output
        assert "cannot be trusted" in r.output and "signed by a CA that is not trusted" in \
            r.output.replace("\n", " ")
        bundle = Path(str(tmp_path)) / "ca.pem"
        bundle.write_text(ca.pem)
        r = runner.invoke(app, ["clusters", "update", cid, "--ca-bundle", str(bundle)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["clusters", "check", cid])
        assert r.exit_code == 0, r.output
        assert "FAIL" not in r.output
    finally:
        server.close()


def test_prometheus_is_checked_with_its_ca_bundle_and_token(
    env: str, hw: FakeHopsworks, tmp_path: object,
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    from tests.tls_certs import make_ca, server_context

    class Prometheus(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == "Bearer prom-secret-1"
            body = (b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                    if ok else b"")
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ca = make_ca()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    server.socket = server_context(ca).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prom = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        cid = _cluster(env, hw.url)
        r = runner.invoke(app, ["clusters", "update", cid, "--prometheus-url", prom,
                                "--prometheus-bearer-token", "prom-secret-1"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["clusters", "check", cid])
        assert r.exit_code == 1, r.output
        assert "FAIL Prometheus answers" in r.output and "cannot be trusted" in r.output
        bundle = Path(str(tmp_path)) / "prom-ca.pem"
        bundle.write_text(ca.pem)
        r = runner.invoke(app, ["clusters", "update", cid, "--prometheus-ca-bundle",
                                str(bundle)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["clusters", "check", cid])
        assert r.exit_code == 0, r.output
        assert "ok   Prometheus answers" in r.output and "prom-secret-1" not in r.output
    finally:
        server.shutdown()
        server.server_close()
