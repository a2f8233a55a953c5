from collections.abc import Iterator

import pytest

from tests.fake_hopsworks import FakeHopsworks


@pytest.fixture
def hw() -> Iterator[FakeHopsworks]:
    server = FakeHopsworks()
    yield server
    server.close()
