"""Hopsworks clusters: registration, capacity-aware assignment of accounts, provisioning."""
