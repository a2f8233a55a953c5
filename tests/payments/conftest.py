from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.db.engine import Database
from hopsplane.integrations.stripe import StripeApi, build_stripe
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, StripeFront
from tests.payments.ledger_check import stripe_vs_ledger

UNRECONCILED = "stripe_unreconciled"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{UNRECONCILED}(reason): the test ends with the ledger and Stripe apart "
        "on purpose (events about payments Stripe never had, a fix not run); the ledger "
        "check after it is skipped")


@pytest.fixture(autouse=True)
def ledger_matches_stripe(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that drives the local Stripe and a database of its own: every
    charge, refund and dispute Stripe has for the test's accounts is in the ledger, and
    every purchase of the ledger is a payment Stripe has (the CI's reconciliation of the
    suite's Stripe scenarios). A test that leaves them apart fails here."""
    names = request.fixturenames
    if ("fresh_db" not in names or "stripe_front" not in names
            or request.node.get_closest_marker(UNRECONCILED)):
        yield
        return
    db: Database = request.getfixturevalue("fresh_db")
    gateway: StripeApi = request.getfixturevalue("gateway")
    started = datetime.now(UTC) - timedelta(seconds=1)  # Stripe's times are whole seconds
    yield
    apart = stripe_vs_ledger(db, gateway, started)
    assert not apart, "the ledger and Stripe disagree after this test:\n" + "\n".join(
        f"  {d.kind} {d.payment_intent_id} account={d.account_owner_id} {d.amount}: "
        f"{d.detail}" for d in apart)


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
