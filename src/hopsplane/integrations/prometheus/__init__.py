"""A thin client of the Prometheus HTTP API (instant queries only).

``GET <base>/api/v1/query?query=...&time=...`` answers
``{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...},
"value": [<unix time>, "<number as a string>"]}]}}`` or ``{"status": "error",
"errorType": ..., "error": ...}``. Values are converted from their string to Decimal
directly (never through float).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx

from hopsplane.errors import Unavailable


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: Decimal


class PrometheusQuery(Protocol):
    def query(self, promql: str, at: datetime) -> list[Sample]:
        """Evaluate an instant query at ``at``; raise Unavailable when it cannot."""
        ...


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            timeout=timeout, headers=headers or {}, transport=transport
        )

    def query(self, promql: str, at: datetime) -> list[Sample]:
        params = {"query": promql, "time": f"{at.timestamp():.3f}"}
        try:
            response = self._client.get(f"{self.base_url}/api/v1/query", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"Prometheus at {self.base_url} is unreachable: {type(exc).__name__}"
            ) from exc
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


def build_prometheus_client(base_url: str) -> PrometheusQuery:
    return HttpPrometheusClient(base_url)
