"""Hopsworks REST client (admin API). See :mod:`hopsplane.integrations.hopsworks.client`."""

from hopsplane.integrations.hopsworks.client import (
    HopsworksApi,
    HopsworksClient,
    HopsworksClientFactory,
    HopsworksProject,
    HopsworksRejected,
    HopsworksUnavailable,
    HopsworksUser,
    build_client_factory,
)

__all__ = [
    "HopsworksApi",
    "HopsworksClient",
    "HopsworksClientFactory",
    "HopsworksProject",
    "HopsworksRejected",
    "HopsworksUnavailable",
    "HopsworksUser",
    "build_client_factory",
]
