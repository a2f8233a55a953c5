"""Pure rules of the clusters domain (no I/O)."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from urllib.parse import urlsplit

from hopsplane.errors import Invalid
from hopsplane.integrations.hopsworks import DEFAULT_PROJECT_SERVICES, PROJECT_SERVICES

PROMETHEUS_URL_KEY = "prometheus_url"
PROJECT_NAME_KEY = "hopsworks_project_name"
NAMESPACE_KEY = "hopsworks_namespace"  # users.metadata: the project's Kubernetes namespace
MEMBER_OF_KEY = "hopsworks_member_of"  # users.metadata: the project a member was added to
CLUSTER_KEY = "hopsworks_cluster_id"
SUSPENDED_KEY = "hopsworks_suspended"
SUSPENSION_KEY = "hopsworks_suspension"  # users.metadata: id of the current suspension
BUDGET_STOPPED_KEY = "hopsworks_budget_stopped"  # users.metadata: a member over their budget
BUDGET_STOP_KEY = "hopsworks_budget_stop"  # users.metadata: id of the member's current stop
SWEPT_AT_KEY = "hopsworks_swept_at"  # users.metadata: when their workloads were last stopped
STRAY_PROJECTS_KEY = "hopsworks_stray_projects"  # owner's users.metadata: see stray_projects
OWNER_MAX_PROJECTS = 1  # maxNumProjects of an owner: the account's project, nothing else
MEMBER_MAX_PROJECTS = 0  # a member owns no project (they work in the owner's)
PROJECT_SERVICES_KEY = "project_services"  # hopsworks_clusters.metadata
OPERATOR_ERROR_KEY = "operator_error"  # hopsworks_clusters.metadata: what an operator must fix
MAX_NAME = 200


class ClusterStatus(StrEnum):
    ACTIVE = "active"  # accepts new accounts
    DRAINING = "draining"  # keeps its accounts, accepts no new ones
    DISABLED = "disabled"  # accepts nothing, not even a move by hand


def parse_status(value: str) -> ClusterStatus:
    try:
        return ClusterStatus(value)
    except ValueError as exc:
        raise Invalid(f"status must be active, draining or disabled, got {value!r}") from exc


def validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise Invalid(f"cluster name must be 1 to {MAX_NAME} characters")
    return name


def validate_http_url(url: str, what: str) -> str:
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port out of range raises here, not at the first call
    except ValueError:  # "http://[x" (a broken IPv6 literal), a netloc NFKC changes, ...
        raise Invalid(f"{what} must be an http(s) URL, got {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"{what} must be an http(s) URL, got {url!r}")
    if parts.username or parts.password:
        raise Invalid(f"{what} must not carry credentials")
    return url


def validate_max_users(value: int) -> int:
    if value < 0 or value > 1_000_000:
        raise Invalid("max_users must be between 0 and 1,000,000")
    return value


def validate_secret(value: str, what: str, *, strip: bool = True) -> str:
    """A non-empty secret; API keys lose surrounding spaces, files (kubeconfig) are kept
    byte for byte."""
    if not value or not value.strip():
        raise Invalid(f"{what} must not be empty")
    return value.strip() if strip else value


def budget_stop_id(member_id: str, metadata: dict[str, object] | None) -> str:
    """The id a member's budget stop is recorded under (members stopped before stops had
    an id get one derived from the member)."""
    return str((metadata or {}).get(BUDGET_STOP_KEY) or f"budget:{member_id}")


def project_name_for(account_id: str) -> str:
    """The Hopsworks project of an account: derived from the owner's id, so the name is
    stable across retries (a repeat finds the project it created) and never collides.
    Letters, digits and one underscore, as Hopsworks project names allow."""
    digest = hashlib.sha256(account_id.encode()).hexdigest()[:16]
    return f"hp_{digest}"


_NAME_SPLIT = re.compile(r"\s+")


def split_name(full_name: str | None, email: str) -> tuple[str, str]:
    """(given name, surname) for Hopsworks, which requires both."""
    parts = _NAME_SPLIT.split((full_name or "").strip(), maxsplit=1)
    if parts and parts[0]:
        return parts[0], parts[1] if len(parts) > 1 else "-"
    return email.split("@", 1)[0] or "user", "-"


def validate_services(services: list[str] | None) -> list[str]:
    """Services of the projects created on a cluster: names of Hopsworks' ProjectServiceEnum
    (upper case, each once); None means the Python client's list."""
    if services is None:
        return list(DEFAULT_PROJECT_SERVICES)
    wanted = [s.strip().upper() for s in services if s.strip()]
    unknown = sorted(set(wanted) - PROJECT_SERVICES)
    if unknown:
        raise Invalid(
            f"unknown Hopsworks project services {', '.join(unknown)}; valid: "
            f"{', '.join(sorted(PROJECT_SERVICES))}"
        )
    return list(dict.fromkeys(wanted))


def project_services(cluster_metadata: dict[str, object]) -> list[str]:
    configured = cluster_metadata.get(PROJECT_SERVICES_KEY)
    if isinstance(configured, list) and all(isinstance(s, str) for s in configured):
        return list(configured)
    return list(DEFAULT_PROJECT_SERVICES)
