"""The console under test: the app with the local Auth0 issuer and a local Stripe."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.db.engine import Database
from tests.apps import Api, id_settings
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront


@pytest.fixture
def web(fresh_db: Database, stripe_front: StripeFront) -> Iterator[Api]:
    settings = id_settings(
        stripe_secret_key=TEST_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_front.url, stripe_min_topup=Decimal("5.00"),
        stripe_max_topup=Decimal("5000.00"),
    )
    app = create_app(settings, database=fresh_db)
    # https: outside development the session cookies are Secure, and a client keeps
    # them only for https.
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)
