from collections.abc import Iterator
from dataclasses import replace

import pytest

from hopsplane.composition import jobs as schedule
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.integrations.hopsworks import HopsworksApi, HopsworksClient
from hopsplane.worker.runner import Worker
from tests.factories import Clock

CREATE_TIMEOUT = 1.0
"""createas' own timeout in these tests: a creation held by the stand-in outlasts it."""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(fresh_db: Database, settings: Settings, box: SecretBox, clock: Clock
           ) -> Iterator[Worker]:
    def factory(url: str, key: str, auth_key: str | None, *,
                ca_bundle: str | None = None) -> HopsworksApi:
        return HopsworksClient(url, key, auth_key, timeout=5, retries=1, backoff=0,
                               ca_bundle=ca_bundle, create_timeout=CREATE_TIMEOUT)

    services = replace(schedule.services(settings, fresh_db), box=box, hopsworks=factory)
    yield Worker(fresh_db, schedule.handlers(), schedule.periodic_tasks(), services=services,
                 clock=clock)
