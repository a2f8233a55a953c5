"""Data shapes of the clusters domain (API bodies, service results)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hopsplane.fields import Identifier, ShortText, Url


class ClusterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    api_url: Url = Field(
        description="Base URL of the Hopsworks cluster, e.g. https://hw.example.com"
    )
    api_key: SecretStr = Field(description="Hopsworks API key (admin scope). Stored encrypted.")
    max_users: int = Field(100, ge=0, le=1_000_000, description="Accounts the cluster may hold.")
    kubeconfig: SecretStr | None = Field(None, description="Stored encrypted, never returned.")
    prometheus_url: Url | None = Field(None, description="Prometheus HTTP API base URL.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ClusterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    api_url: Url | None = None
    api_key: SecretStr | None = None
    max_users: int | None = Field(None, ge=0, le=1_000_000)
    kubeconfig: SecretStr | None = None
    prometheus_url: Url | None = Field(None, description="Empty string removes it.")


class ClusterOut(BaseModel):
    """A cluster as admins see it: never the API key or the kubeconfig."""

    id: uuid.UUID
    name: str
    api_url: str
    status: str
    max_users: int
    current_users: int
    free_capacity: int
    has_kubeconfig: bool
    prometheus_url: str | None
    metadata: dict[str, Any]


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_owner_id: Identifier


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_owner_id: str
    hopsworks_cluster_id: uuid.UUID
    assigned_at: datetime
    assigned_by: str | None


class ClusterSecrets(BaseModel):
    """Decrypted connection details, for the worker only (never rendered)."""

    id: uuid.UUID
    api_url: str
    api_key: SecretStr
