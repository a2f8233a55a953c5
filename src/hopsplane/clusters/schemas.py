"""Data shapes of the clusters domain (API bodies, service results)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hopsplane.fields import (
    HeaderSafeSecret,
    HttpUrl,
    Identifier,
    JsonDocument,
    NameText,
    NoNulText,
    Url,
    any_case,
)
from hopsplane.integrations.hopsworks import PROJECT_SERVICES
from hopsplane.integrations.tls import PEM_CERTIFICATE, PEM_CHARS

# A CA bundle holds at least one certificate block (whether OpenSSL loads what is inside is
# beyond a pattern; the description says so).
PEM_PATTERN = f"^{PEM_CHARS}*{PEM_CERTIFICATE}{PEM_CHARS}*$"

# What validation takes as a service: a ProjectServiceEnum name in any case, spaces around
# it dropped (an entry of spaces only is skipped).
ServiceName = Annotated[str, Field(json_schema_extra={"pattern": (
    "^\\s*(?:" + "|".join(any_case(s) for s in sorted(PROJECT_SERVICES)) + ")?\\s*$"
)})]


class ClusterCreate(BaseModel):
    # hide_input: a refused key is never repeated in an error's text
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: NameText
    api_url: HttpUrl = Field(
        description="Base URL of the Hopsworks cluster, e.g. https://hw.example.com"
    )
    api_key: HeaderSafeSecret = Field(
        description="Hopsworks API key of a HOPS_ADMIN user with the scopes ADMIN, "
        "ADMINISTER_USERS and PROJECT. Stored encrypted, never returned."
    )
    auth_api_key: HeaderSafeSecret | None = Field(
        None,
        description="A second API key of a HOPS_ADMIN user with only the AUTH scope: it signs "
        "tokens of project owners (it can act as any user). Stored encrypted, never returned.",
    )
    project_services: list[ServiceName] | None = Field(
        None, description="Services of new projects (ProjectServiceEnum names); default: "
        "JOBS, KAFKA, JUPYTER, HIVE, SERVING, FEATURESTORE, AIRFLOW.",
    )
    max_users: int = Field(100, ge=0, le=1_000_000, description="Accounts the cluster may hold.")
    kubeconfig: SecretStr | None = Field(None, description="Stored encrypted, never returned.")
    prometheus_url: HttpUrl | None = Field(None, description="Prometheus HTTP API base URL.")
    ca_bundle: str | None = Field(
        None, max_length=200_000, pattern=PEM_PATTERN, description="PEM of the CA(s) that "
        "signed the Hopsworks API's certificate; without it the system's trust store is used. "
        "Its blocks must hold certificates OpenSSL loads (else 422).")
    prometheus_ca_bundle: str | None = Field(
        None, max_length=200_000, pattern=PEM_PATTERN, description="PEM of the CA(s) that "
        "signed Prometheus' certificate (as ca_bundle).")
    prometheus_bearer_token: SecretStr | None = Field(
        None, description="Bearer token Prometheus wants. Stored encrypted, never returned.")
    prometheus_username: str | None = Field(
        None, max_length=200, description="Basic-auth user of Prometheus (with the password).")
    prometheus_password: SecretStr | None = Field(
        None, description="Basic-auth password of Prometheus. Stored encrypted, never "
        "returned.")
    metadata: dict[NoNulText, JsonDocument] = Field(default_factory=dict)


class ClusterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: NameText | None = None
    api_url: HttpUrl | None = None
    api_key: HeaderSafeSecret | None = None
    auth_api_key: HeaderSafeSecret | None = None
    project_services: list[ServiceName] | None = None
    max_users: int | None = Field(None, ge=0, le=1_000_000)
    kubeconfig: SecretStr | None = None
    prometheus_url: Url | None = Field(None, description="Empty string removes it.")
    ca_bundle: str | None = Field(None, max_length=200_000, pattern=f"^$|{PEM_PATTERN}",
                                  description="PEM; an empty string removes it.")
    prometheus_ca_bundle: str | None = Field(None, max_length=200_000,
                                             pattern=f"^$|{PEM_PATTERN}",
                                             description="PEM; an empty string removes it.")
    prometheus_bearer_token: SecretStr | None = Field(
        None, description="Replaces Prometheus' credentials; an empty string removes them.")
    prometheus_username: str | None = Field(None, max_length=200)
    prometheus_password: SecretStr | None = Field(
        None, description="With prometheus_username: basic auth; replaces a bearer token.")


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
    has_auth_api_key: bool
    project_services: list[str]
    operator_error: str | None = Field(
        None, description="What an operator must fix before provisioning can go on."
    )
    prometheus_url: str | None
    has_ca_bundle: bool = False
    has_prometheus_ca_bundle: bool = False
    prometheus_auth: str | None = Field(
        None, description="How hopsplane authenticates to Prometheus: bearer, basic or none.")
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
    auth_api_key: SecretStr | None
    ca_bundle: str | None = None


class PrometheusConnection(BaseModel):
    """How to reach a cluster's Prometheus, decrypted, for the usage collector only."""

    url: str
    ca_bundle: str | None = None
    bearer_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


class StoppedWorkloadOut(BaseModel):
    """Something a suspension stopped; restart it in Hopsworks once the account is back."""

    model_config = ConfigDict(from_attributes=True)

    kind: str = Field(description="job_execution, jupyter or deployment")
    name: str
    hopsworks_user: str | None
    project_id: int
    stopped_at: datetime


class StrayProjectOut(BaseModel):
    """A Hopsworks project that a user of the account owns besides the account's project
    (made before hopsplane limited their project quota): its usage is billed to the
    account's owner and a suspension stops it too; the operator may delete it."""

    id: int
    name: str
    namespace: str
    creator: str = Field(description="Hopsworks username of its owner (owner or member)")
