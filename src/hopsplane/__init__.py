"""hopsplane: the control plane of a managed Hopsworks service."""

__version__ = "0.1.0"
