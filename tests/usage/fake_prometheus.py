"""A local HTTP server that answers /api/v1/query like Prometheus does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class FakePrometheus:
    url: str = ""
    # namespace -> value string, answered for every query but kube_pod_labels ones
    values: dict[str, str] = field(default_factory=dict)
    # (labels, value) series answered instead of `values` when given
    series: list[tuple[dict[str, str], str]] = field(default_factory=list)
    # the answer to queries of kube_pod_labels: pod label sets
    pod_labels: list[dict[str, str]] = field(default_factory=list)
    error: tuple[int, str, str] | None = None  # (HTTP status, errorType, error)
    raw_body: bytes | None = None
    queries: list[dict[str, str]] = field(default_factory=list)

    def answer(self, query: str = "") -> tuple[int, bytes]:
        if self.raw_body is not None:
            return 200, self.raw_body
        if self.error is not None:
            status, kind, message = self.error
            return status, json.dumps(
                {"status": "error", "errorType": kind, "error": message}).encode()
        if "kube_pod_labels" in query:
            result: list[dict[str, Any]] = [
                {"metric": {"__name__": "kube_pod_labels", **labels}, "value": [1795219200, "1"]}
                for labels in self.pod_labels
            ]
        elif self.series:
            result = [{"metric": labels, "value": [1795219200, value]}
                      for labels, value in self.series]
        else:
            result = [{"metric": {"namespace": ns}, "value": [1795219200, value]}
                      for ns, value in self.values.items()]
        return 200, json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@contextmanager
def fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path != "/api/v1/query":
                self.send_response(404)
                self.end_headers()
                return
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            fake.queries.append(query)
            status, body = fake.answer(query.get("query", ""))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
