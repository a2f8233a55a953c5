"""`hopsplane dev` refuses what it cannot do before it touches a database: a taken port
(named, with who holds it) and an environment that is not development."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hopsplane.cli.main import app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HOPSPLANE_DATABASE_URL", "HOPSPLANE_ENVIRONMENT", "HOPSPLANE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOPSPLANE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_taken_port_is_named_before_any_database_work(data_dir: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = CliRunner().invoke(app, ["dev", "--demo", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} is already in use" in " ".join(result.output.split())
    assert not (data_dir / "pgdata").exists()  # no embedded server was started


def test_only_a_development_environment(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPSPLANE_ENVIRONMENT", "test")
    result = CliRunner().invoke(app, ["dev"])
    assert result.exit_code == 1
    assert "HOPSPLANE_ENVIRONMENT is test" in " ".join(result.output.split())
    assert not (data_dir / "pgdata").exists()
