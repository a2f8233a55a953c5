"""Hopsworks REST client. See :mod:`hopsplane.integrations.hopsworks.client` (admin API and
tokens), :mod:`hopsplane.integrations.hopsworks.owner` (calls as a project's user) and
:mod:`hopsplane.integrations.hopsworks.errors` (refusals and errors both share)."""

from hopsplane.integrations.hopsworks.client import (
    DEFAULT_PROJECT_SERVICES,
    JWT_SINCE,
    PROJECT_SERVICES,
    HopsworksApi,
    HopsworksClient,
    HopsworksClientFactory,
    HopsworksProject,
    HopsworksUser,
    build_client_factory,
    namespace_of,
)
from hopsplane.integrations.hopsworks.errors import (
    HopsworksMisconfigured,
    HopsworksRejected,
    HopsworksUnavailable,
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
