"""Thin typed clients for the outside world, each behind a Protocol, built from settings."""
