"""Hopsworks REST client. See :mod:`hopsplane.integrations.hopsworks.client` (admin API and
tokens) and :mod:`hopsplane.integrations.hopsworks.owner` (calls as a project's user)."""

from hopsplane.integrations.hopsworks.client import (
    DEFAULT_PROJECT_SERVICES,
    JWT_SINCE,
    PROJECT_SERVICES,
    HopsworksApi,
    HopsworksClient,
    HopsworksClientFactory,
    HopsworksMisconfigured,
    HopsworksProject,
    HopsworksRejected,
    HopsworksUnavailable,
    HopsworksUser,
    build_client_factory,
    namespace_of,
)
from hopsplane.integrations.hopsworks.owner import OwnerSession, Workload

__all__ = [
    "DEFAULT_PROJECT_SERVICES",
    "JWT_SINCE",
    "PROJECT_SERVICES",
    "HopsworksApi",
    "HopsworksClient",
    "HopsworksClientFactory",
    "HopsworksMisconfigured",
    "HopsworksProject",
    "HopsworksRejected",
    "HopsworksUnavailable",
    "HopsworksUser",
    "OwnerSession",
    "Workload",
    "build_client_factory",
    "namespace_of",
]
