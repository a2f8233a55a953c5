"""Fixtures of the identity and teams tests: an app whose identity is the local development
issuer (real RSA keys, real JWKS over HTTP), callers with real access tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from tests.apps import Api, id_settings


@pytest.fixture
def api(fresh_db: Database) -> Iterator[Api]:
    app = create_app(id_settings(), database=fresh_db)
    # https: outside development the session cookies are Secure, and a client keeps
    # them only for https.
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)
