from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from hopsplane.clusters import service
from hopsplane.clusters.schemas import ClusterCreate, ClusterOut
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
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
