from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import StripeApi, build_stripe
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront


@pytest.fixture
def stripe_settings(settings: Settings, stripe_front: StripeFront) -> Settings:
    return Settings(**{  # type: ignore[arg-type]
        **settings.model_dump(),
        "stripe_secret_key": TEST_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe_front.url,
        "stripe_min_topup": Decimal("5.00"),
        "stripe_max_topup": Decimal("5000.00"),
        "public_url": "https://console.hopsplane.test",
        "_env_file": None,
    })


@pytest.fixture
def gateway(stripe_settings: Settings) -> StripeApi:
    built = build_stripe(stripe_settings)
    assert built is not None
    return built


@pytest.fixture
def app_client(fresh_db: Database, stripe_settings: Settings) -> Iterator[TestClient]:
    """The app as `hopsplane serve` builds it: the Stripe client comes from the settings."""
    with TestClient(create_app(stripe_settings, database=fresh_db)) as c:
        yield c
