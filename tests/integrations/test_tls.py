"""Both cluster clients over TLS with a CA made in the test: the cluster's CA bundle is what
they trust, and a refused certificate is said in plain words (never retried)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.errors import Invalid
from hopsplane.integrations.hopsworks import HopsworksClient, HopsworksMisconfigured
from hopsplane.integrations.prometheus import HttpPrometheusClient, PrometheusError
from hopsplane.integrations.tls import validate_ca_bundle
from tests.tls_certs import Ca, make_ca, server_context


@pytest.fixture(scope="module")
def ca() -> Ca:
    return make_ca()


@pytest.fixture
def tls_hw(ca: Ca) -> Iterator[FakeHopsworks]:
    server = FakeHopsworks(ssl_context=server_context(ca))
    yield server
    server.close()


def _client(hw: FakeHopsworks, ca_bundle: str | None) -> HopsworksClient:
    return HopsworksClient(hw.url, hw.state.api_key, hw.state.auth_api_key, timeout=5,
                           retries=2, backoff=0, ca_bundle=ca_bundle)


def test_hopsworks_over_tls_with_the_clusters_ca_bundle(ca: Ca, tls_hw: FakeHopsworks) -> None:
    assert tls_hw.url.startswith("https://")
    client = _client(tls_hw, ca.pem)
    try:
        assert client.version() == (3, 8, 0)
        owner = client.create_user("tls@example.com", "T", "L")
        assert client.find_user("tls@example.com") == owner
    finally:
        client.close()


def test_an_untrusted_certificate_is_an_operator_error_in_plain_words_not_a_retry(
    tls_hw: FakeHopsworks,
) -> None:
    for bundle in (None, make_ca("some other CA").pem):
        client = _client(tls_hw, bundle)
        before = len(tls_hw.state.requests)
        with pytest.raises(HopsworksMisconfigured) as info:
            client.version()
        client.close()
        assert "cannot be trusted" in info.value.message
        assert "CA" in info.value.message and "--ca-bundle" in info.value.message
        assert len(tls_hw.state.requests) == before  # no request ever got through


def test_an_expired_certificate_and_one_for_another_name_are_said_so(ca: Ca) -> None:
    for context, words in ((server_context(ca, expired=True), "has expired"),
                           (server_context(ca, host="hopsworks.example.com"),
                            "for another name")):
        server = FakeHopsworks(ssl_context=context)
        client = _client(server, ca.pem)
        try:
            with pytest.raises(HopsworksMisconfigured) as info:
                client.version()
            assert words in info.value.message, info.value.message
        finally:
            client.close()
            server.close()


def test_a_ca_bundle_must_be_pem() -> None:
    with pytest.raises(Invalid):
        validate_ca_bundle("not a certificate", "ca_bundle")
    with pytest.raises(Invalid):
        validate_ca_bundle("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                           "ca_bundle")


# -- Prometheus behind TLS and authentication ----------------------------------------------

class _Prometheus(BaseHTTPRequestHandler):
    wanted: str = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.wanted:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"namespace": "hp-1"}, "value": [1, "12.5"]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def prometheus(ca: Ca) -> Iterator[tuple[str, type[_Prometheus]]]:
    handler = type("Handler", (_Prometheus,), {"wanted": "Bearer prom-token"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = server_context(ca).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_prometheus_over_tls_with_a_bearer_token_or_basic_auth(
    ca: Ca, prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    client = HttpPrometheusClient(url, ca_bundle=ca.pem, bearer_token="prom-token")
    [sample] = client.query("sum(x)", datetime.now(UTC))
    assert sample.labels == {"namespace": "hp-1"} and str(sample.value) == "12.5"
    client.close()

    handler.wanted = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    client = HttpPrometheusClient(url, ca_bundle=ca.pem, basic_auth=("reader", "s3cret"))
    assert len(client.query("sum(x)", datetime.now(UTC))) == 1
    client.close()

    client = HttpPrometheusClient(url, ca_bundle=ca.pem)
    with pytest.raises(PrometheusError, match="refused hopsplane's credentials"):
        client.query("sum(x)", datetime.now(UTC))
    client.close()


def test_prometheus_with_an_untrusted_certificate_is_said_in_plain_words(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, _handler = prometheus
    client = HttpPrometheusClient(url, bearer_token="prom-token")
    with pytest.raises(PrometheusError) as info:
        client.query("sum(x)", datetime.now(UTC))
    client.close()
    assert "cannot be trusted" in info.value.message
    assert "--prometheus-ca-bundle" in info.value.message
    assert "prom-token" not in info.value.message
