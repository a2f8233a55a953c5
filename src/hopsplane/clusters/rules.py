"""Pure rules of the clusters domain (no I/O)."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from urllib.parse import urlsplit

from hopsplane.errors import Invalid

PROMETHEUS_URL_KEY = "prometheus_url"
PROJECT_NAME_KEY = "hopsworks_project_name"
CLUSTER_KEY = "hopsworks_cluster_id"
SUSPENDED_KEY = "hopsworks_suspended"
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
    parts = urlsplit(url)
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


def project_name_for(account_owner_id: str) -> str:
    """The Hopsworks project of an account: derived from the owner's id, so the name is
    stable across retries (a repeat finds the project it created) and never collides.
    Letters, digits and one underscore, as Hopsworks project names allow."""
    digest = hashlib.sha256(account_owner_id.encode()).hexdigest()[:16]
    return f"hp_{digest}"


def namespace_of(project_name: str) -> str:
    """Kubernetes namespace Hopsworks gives a project: lower case, '_' becomes '-'."""
    return project_name.lower().replace("_", "-")


_NAME_SPLIT = re.compile(r"\s+")


def split_name(full_name: str | None, email: str) -> tuple[str, str]:
    """(given name, surname) for Hopsworks, which requires both."""
    parts = _NAME_SPLIT.split((full_name or "").strip(), maxsplit=1)
    if parts and parts[0]:
        return parts[0], parts[1] if len(parts) > 1 else "-"
    return email.split("@", 1)[0] or "user", "-"
