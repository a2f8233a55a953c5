"""Generated legacy databases and helpers to compare them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hopsplane.config import Settings
from tests.factories import make_legacy
from tests.pg import PgServer


@pytest.fixture
def legacy_url(pg: PgServer) -> str:
    return make_legacy(pg)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    from hopsplane.config import get_settings

    monkeypatch.delenv("HOPSPLANE_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOPSPLANE_ENVIRONMENT", "development")
    assert settings.encryption_keys is not None
    monkeypatch.setenv("HOPSPLANE_ENCRYPTION_KEYS", settings.encryption_keys.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
