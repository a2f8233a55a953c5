"""A cluster's API keys go in an HTTP header (``Authorization: ApiKey <key>``): a key with
a NUL, CR/LF, a space or a non-ASCII character is refused where it comes in (API 422, CLI
message, console form), never repeated in the refusal, and never written to a log at any
level, DEBUG included (the HTTP library's debug lines repeat a header it refuses)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.api.app import create_app
from hopsplane.cli.main import app as cli
from hopsplane.config import Settings, get_settings
from hopsplane.db.engine import Database
from hopsplane.http.deps import Principal
from hopsplane.integrations.hopsworks import HopsworksClient, HopsworksMisconfigured
from hopsplane.observability import configure_logging
from tests.apps import Api, csrf_of

ADMIN = Principal("admin", "a@x.io", account_owner_id=None, is_platform_admin=True)
SECRET = "SeKrEt0123456789"
BAD_KEYS = [("api_key", f"{SECRET}\x00x"), ("auth_api_key", f"{SECRET}\r\nX-Evil: 1"),
            ("api_key", f"{SECRET}\nX"), ("auth_api_key", f"{SECRET}\u00e9"),
            ("api_key", f"{SECRET} tail"), ("auth_api_key", f"{SECRET}\u2028X"),
            ("api_key", f"{SECRET}\t1")]


@pytest.fixture
def client(fresh_db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, database=fresh_db)
    app.state.authenticator = lambda _r, _s: ADMIN
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(("field", "key"), BAD_KEYS)
def test_the_api_refuses_keys_a_header_cannot_carry(
    client: TestClient, field: str, key: str
) -> None:
    body = {"name": "eu-1", "api_url": "https://eu-1.example.com", "api_key": "good.Key1",
            "auth_api_key": "good.Auth1", field: key}
    answer = client.post("/v1/admin/clusters", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"] and SECRET not in answer.text
    assert client.get("/v1/admin/clusters").json()["items"] == []


def test_the_api_accepts_a_key_with_surrounding_spaces_trimmed(client: TestClient) -> None:
    answer = client.post("/v1/admin/clusters", json={
        "name": "eu-1", "api_url": "https://eu-1.example.com", "api_key": "  good.Key1\n",
        "auth_api_key": "good.Auth1"})
    assert answer.status_code == 201, answer.text
    cid = answer.json()["id"]
    bad = client.patch(f"/v1/admin/clusters/{cid}", json={"api_key": f"{SECRET}\r\nX"})
    assert bad.status_code == 422 and SECRET not in bad.text


@pytest.mark.parametrize("key", [f"{SECRET}\x01", f"{SECRET}\u00e9", f"{SECRET} x"])
def test_the_cli_refuses_them_with_a_message(
    env: str, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, [
        "clusters", "add", "eu-1", "--api-url", "https://eu-1.example.com",
        "--api-key", key, "--auth-api-key", "good.Auth1"])
    assert result.exit_code == 1, result.output
    assert "visible ASCII" in result.output and SECRET not in result.output
    assert "Traceback" not in result.output


def test_a_stored_bad_key_is_an_operator_error_never_a_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Keys stored before they were checked: the client refuses to send them."""
    configure_logging("DEBUG", "console")
    try:
        with pytest.raises(HopsworksMisconfigured) as refused:
            HopsworksClient("http://127.0.0.1:9", f"{SECRET}\r\nX", None)
        assert SECRET not in str(refused.value)
    finally:
        configure_logging("INFO", "console")
    assert SECRET not in capsys.readouterr().err


def test_at_debug_no_http_library_line_repeats_a_refused_header(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """httpx/httpcore at DEBUG: a header value the HTTP library refuses is repeated in its
    error, which httpcore logs; those lines are never written."""
    configure_logging("DEBUG", "console")
    try:
        with httpx.Client(transport=httpx.HTTPTransport(retries=0)) as http, \
                pytest.raises(httpx.HTTPError):
            http.get("http://127.0.0.1:9/", headers={"Authorization": f"ApiKey {SECRET}\r\nX"})
        logging.getLogger("hopsplane.test").debug("debug lines are written")
    finally:
        configure_logging("INFO", "console")
    err = capsys.readouterr().err
    assert "debug lines are written" in err  # DEBUG was on
    assert SECRET not in err


@pytest.mark.parametrize("url", ["http://[x", "http://[::1", "http://\u2100", "http://a:99999999"])
def test_urls_the_parser_cannot_take_are_422(client: TestClient, url: str) -> None:
    answer = client.post("/v1/admin/clusters", json={
        "name": "eu-1", "api_url": url, "api_key": "good.Key1", "auth_api_key": "good.Auth1"})
    assert answer.status_code == 422, answer.text
    assert "api_url" in answer.json()["detail"]


def test_the_console_form_refuses_them_with_a_page(web: Api) -> None:
    _, admin = web.new_user(admin=True)
    page = web.client.get("/console/admin", headers=admin)
    fields = {"csrf": csrf_of(page.text), "name": "eu-1", "api_url": "https://hw.example.com",
              "api_key": "admin-key-1", "auth_api_key": "auth-key-1", "max_users": "5"}
    for field, key in (("api_key", f"{SECRET}\x00x"), ("auth_api_key", f"{SECRET}\r\nX: 1"),
                       ("api_key", f"{SECRET}\u00e9")):
        answer = web.client.post("/console/admin/clusters", data={**fields, field: key},
                                 headers=admin)
        assert answer.status_code == 422 and "visible ASCII" in answer.text, answer.text[:300]
        assert SECRET not in answer.text
    with web.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM hopsworks_clusters")).scalar_one() == 0


@pytest.mark.parametrize("bundle", [
    "-----BEGIN CERTIFICATE-----\n\u00e9\n-----END CERTIFICATE-----",  # OpenSSL takes ASCII
    "-----BEGIN CERTIFICATE-----\nAAAA\x00\n-----END CERTIFICATE-----",
    "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----",
    "no certificate here",
])
@pytest.mark.parametrize("field", ["ca_bundle", "prometheus_ca_bundle"])
def test_a_ca_bundle_that_is_not_pem_certificates_is_422_and_stores_nothing(
    client: TestClient, field: str, bundle: str
) -> None:
    answer = client.post("/v1/admin/clusters", json={
        "name": "eu-1", "api_url": "https://eu-1.example.com", "api_key": "good.Key1",
        "auth_api_key": "good.Auth1", field: bundle})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"], answer.text
    assert client.get("/v1/admin/clusters").json()["items"] == []
