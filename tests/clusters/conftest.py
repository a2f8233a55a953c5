from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from hopsplane.clusters import service
from hopsplane.clusters.hooks import ClusterHooks
from hopsplane.clusters.schemas import ClusterCreate, ClusterOut
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.db.models import User
from hopsplane.integrations.hopsworks import HopsworksApi, HopsworksClient
from hopsplane.worker import schedule
from hopsplane.worker.runner import Worker
from tests.factories import make_user
from tests.fake_hopsworks import FakeHopsworks


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.effective_encryption_keys)


@pytest.fixture
def hw() -> Iterator[FakeHopsworks]:
    server = FakeHopsworks()
    yield server
    server.close()


def add_cluster(
    session: Session, box: SecretBox, name: str, max_users: int = 10,
    api_url: str = "https://hw.example.com", api_key: str = "hw-secret-key",
    auth_api_key: str | None = "hw-auth-key",
) -> ClusterOut:
    return service.register_cluster(
        session, box,
        ClusterCreate(name=name, api_url=api_url, api_key=SecretStr(api_key), max_users=max_users,
                      auth_api_key=SecretStr(auth_api_key) if auth_api_key else None),
    )


class Clock:
    """Real time plus an offset the test moves forward (to make retries due)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(fresh_db: Database, box: SecretBox, clock: Clock) -> Iterator[Worker]:
    def factory(url: str, key: str, auth_key: str | None) -> HopsworksApi:
        return HopsworksClient(url, key, auth_key, timeout=5, retries=1, backoff=0)

    yield Worker(fresh_db, schedule.handlers(), schedule.periodic_tasks(),
                 services={"box": box, "hopsworks": factory}, clock=clock)


def user(db: Database, user_id: str) -> User:
    with db.transaction() as s:
        found = s.get(User, user_id)
        assert found is not None
        return found


def jobs(db: Database) -> list[Any]:
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT task, status, attempts, last_error, args FROM hopsplane.jobs ORDER BY id")))


def signup(db: Database, **kwargs: Any) -> str:
    with db.transaction() as s:
        owner = make_user(s, **kwargs)
        ClusterHooks().account_created(s, owner)
    return owner
