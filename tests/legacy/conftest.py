"""Generated legacy databases and helpers to compare them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.legacy import service
from hopsplane.legacy.generate import generate
from hopsplane.legacy.inspect import tables_in
from tests.pg import PgServer

USERS = 400


def make_legacy(pg: PgServer, users: int = USERS) -> str:
    url = pg.empty_database()
    with service.connect(url) as conn, conn.begin():
        generate(conn, users)
    return url


@pytest.fixture
def legacy_url(pg: PgServer) -> str:
    return make_legacy(pg)


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.effective_encryption_keys)


def snapshot(url: str, schema: str = "public") -> dict[str, list[str]]:
    """Every table of ``schema`` as its sorted rows (text form): equal snapshots mean equal
    contents."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: sorted(r[0] for r in conn.execute(text(f'SELECT x::text FROM "{schema}"."{t}" x')))
                for t in sorted(tables_in(conn, schema))
            }
    finally:
        engine.dispose()


def run_migrate(url: str, backup_dir: Path, box: SecretBox, **kw: Any) -> service.MigrationReport:
    with service.connect(url) as conn, conn.begin():
        return service.migrate(conn, backup_dir, box, **kw)


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.execute(text(s))
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


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
