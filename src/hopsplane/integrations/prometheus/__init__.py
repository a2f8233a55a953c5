"""A thin client of the Prometheus HTTP API (instant queries only).

``GET <base>/api/v1/query?query=...&time=...`` answers
``{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...},
"value": [<unix time>, "<number as a string>"]}]}}`` or ``{"status": "error",
"errorType": ..., "error": ...}``. Values are converted from their string to Decimal
directly (never through float).

Real clusters put Prometheus behind TLS (often a private CA) and a bearer token or basic
auth (an ingress or ``kube-rbac-proxy`` in front of it): each cluster can give its CA bundle
and one of the two. A refused certificate is reported in plain words.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx

from hopsplane.errors import Unavailable
from hopsplane.integrations.tls import describe_tls_error, verify_for


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: Decimal


class PrometheusQuery(Protocol):
    def query(self, promql: str, at: datetime) -> list[Sample]:
        """Evaluate an instant query at ``at``; raise Unavailable when it cannot."""
        ...


PrometheusFactory = Callable[[uuid.UUID, str], PrometheusQuery]
"""(cluster id, its prometheus_url) -> client. The composition root gives one that adds the
cluster's CA bundle and credentials (kept by the clusters domain); the default has neither."""


class PrometheusError(Unavailable):
    """Prometheus could not be reached or refused the query."""


class HttpPrometheusClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        sent = dict(headers or {})
        if bearer_token:
            sent["Authorization"] = f"Bearer {bearer_token}"
        self._client = httpx.Client(
            timeout=timeout, headers=sent, transport=transport,
            verify=verify_for(ca_bundle, verify_tls),
            auth=httpx.BasicAuth(*basic_auth) if basic_auth and not bearer_token else None,
        )

    def __repr__(self) -> str:  # never show the credentials
        return f"HttpPrometheusClient({self.base_url!r})"

    def query(self, promql: str, at: datetime) -> list[Sample]:
        params = {"query": promql, "time": f"{at.timestamp():.3f}"}
        try:
            response = self._client.get(f"{self.base_url}/api/v1/query", params=params)
        except httpx.HTTPError as exc:
            problem = describe_tls_error(exc)
            if problem is not None:
                raise PrometheusError(
                    f"Prometheus at {self.base_url} cannot be trusted: {problem}") from exc
            raise PrometheusError(
                f"Prometheus at {self.base_url} is unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {self.base_url} refused hopsplane's credentials (HTTP "
                f"{response.status_code}): set --prometheus-bearer-token or "
                "--prometheus-username/--prometheus-password")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(
                f"Prometheus at {self.base_url} answered HTTP {response.status_code} "
                "without a JSON body"
            )
        if body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus at {self.base_url} refused the query (HTTP "
                f"{response.status_code}, {body.get('errorType', 'error')}): "
                f"{body.get('error', 'no message')}"
            )
        return _vector(body.get("data"), self.base_url)

    def close(self) -> None:
        self._client.close()


def _vector(data: Any, where: str) -> list[Sample]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise PrometheusError(f"Prometheus at {where} returned {kind!r}, expected a vector")
    samples = []
    for item in data.get("result") or []:
        try:
            labels = {str(k): str(v) for k, v in dict(item["metric"]).items()}
            _ts, raw = item["value"]
            if not isinstance(raw, str):
                raise TypeError("value is not a string")
            value = Decimal(raw)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise PrometheusError(f"Prometheus at {where} returned a malformed sample") from exc
        samples.append(Sample(labels, value))
    return samples


def build_prometheus_client(
    base_url: str, *, ca_bundle: str | None = None, bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None, verify_tls: bool = True,
) -> PrometheusQuery:
    return HttpPrometheusClient(base_url, ca_bundle=ca_bundle, bearer_token=bearer_token,
                                basic_auth=basic_auth, verify_tls=verify_tls)
