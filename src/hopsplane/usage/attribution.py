"""Which Hopsworks user a pod's CPU belongs to (pure rules, no I/O).

Hopsworks runs a project's work in the project's Kubernetes namespace and names it after the
user: a Jupyter server is the deployment ``<namespace>--<username>`` (its pods
``<namespace>--<username>-<replica set>-<pod>``), a job's pods carry the label
``<jobtype>=<namespace>--<username>``. kube-state-metrics exports pod labels as
``kube_pod_labels{namespace, pod, label_<name>="<value>"}`` (label names sanitised, and in
kube-state-metrics 2.x only those allowed by ``--metric-labels-allowlist``). What matches
neither is not attributed to a user: it is billed to the account owner and marked as
unattributed (its own source in ``raw_metrics``). See docs/hopsworks.md for what of this
was verified.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal


def _range(seconds: int) -> str:
    if seconds <= 0:
        raise ValueError("a range query needs a positive window")
    return "1d" if seconds == 86_400 else f"{seconds}s"


def cpu_by_pod_query(window_seconds: int) -> str:
    """CPU core-seconds of each pod over the ``window_seconds`` ending at the evaluation
    time: a whole UTC day (evaluated at its end), or today so far (evaluated now, the
    window starting at 00:00 UTC). ``increase`` counts a counter reset (a restarted
    container) as a continuation and a pod that ended inside the window for the samples it
    left, so a day collected whole and the same day collected so far agree on what ran."""
    return ("sum by (namespace, pod) "
            '(increase(container_cpu_usage_seconds_total{container!="",image!=""}'
            f"[{_range(window_seconds)}]))")


def pod_labels_query(window_seconds: int) -> str:
    """The labels of every pod that existed during the window (a pod gone since included)."""
    return f"last_over_time(kube_pod_labels[{_range(window_seconds)}])"


CPU_BY_POD_QUERY = cpu_by_pod_query(86_400)
"""CPU core-seconds of each pod over the UTC day ending at the evaluation time."""
POD_LABELS_QUERY = pod_labels_query(86_400)
"""The labels of every pod that existed during the day (a pod gone by midnight included)."""

_USERNAME = re.compile(r"[a-z0-9]+")
_JUPYTER_POD = re.compile(r"([a-z0-9]+)-[a-z0-9]+-[a-z0-9]+")
UNATTRIBUTED = None


def username_of(namespace: str, pod: str, pod_labels: Mapping[str, str] | None) -> str | None:
    """The Hopsworks username a pod of ``namespace`` runs for, or None."""
    prefix = f"{namespace}--"
    for key, value in sorted((pod_labels or {}).items()):
        if key.startswith("label_") and value.startswith(prefix):
            rest = value[len(prefix):]
            if _USERNAME.fullmatch(rest):
                return rest
    if pod.startswith(prefix):
        match = _JUPYTER_POD.fullmatch(pod[len(prefix):])
        if match:
            return match.group(1)
    return None


def split_by_user(
    cpu_by_pod: Iterable[tuple[str, str, Decimal]],
    labels_by_pod: Mapping[tuple[str, str], Mapping[str, str]],
    users_by_namespace: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str | None, Decimal]]:
    """namespace -> {hopsplane user id (None: unattributed): CPU core-seconds}. A pod is
    attributed when its Hopsworks username belongs to the account that owns the namespace
    (``users_by_namespace``: namespace -> {Hopsworks username: user id})."""
    result: dict[str, dict[str | None, Decimal]] = defaultdict(dict)
    for namespace, pod, cpu in cpu_by_pod:
        username = username_of(namespace, pod, labels_by_pod.get((namespace, pod)))
        user_id = users_by_namespace.get(namespace, {}).get(username or "") if username else None
        per_user = result[namespace]
        per_user[user_id] = per_user.get(user_id, Decimal(0)) + cpu
    return dict(result)


def unattributed_source(cluster_id: uuid.UUID) -> str:
    """Source of collected CPU that no user could be found for (billed to the owner)."""
    return f"prometheus:{cluster_id}:unattributed"


def user_event_id(cluster_id: uuid.UUID, namespace: str, day: date, user_id: str) -> str:
    """Deterministic id of a user's collected CPU of one namespace and day."""
    return f"prom:{cluster_id}:{namespace}:{day.isoformat()}:user:{user_id}"
