"""Unknown accounts and clusters are errors in every command that names one:
never an empty "ok" that reads as success."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hopsplane.cli.main import app

runner = CliRunner()
NOBODY = "nobody"
NO_CLUSTER = "00000000-0000-0000-0000-000000000000"

NAMING_AN_ACCOUNT = [
    ["credits", "verify", "--account", NOBODY],
    ["credits", "balance", NOBODY],
    ["credits", "history", NOBODY],
    ["credits", "grant", NOBODY, "5.00", "--reason", "r"],
    ["billing", "set-price", NOBODY, "0.0002", "--from", "2026-11-01", "--reason", "r"],
    ["clusters", "assign", NOBODY],
    ["accounts", "find", NOBODY],
    ["admins", "grant", NOBODY],
]
NAMING_A_CLUSTER = [
    ["clusters", "check", NO_CLUSTER],
    ["clusters", "drain", NO_CLUSTER],
    ["clusters", "update", NO_CLUSTER, "--max-users", "5"],
    ["usage", "issue-token", NO_CLUSTER],
    ["usage", "collect", "--cluster", NO_CLUSTER],
]


@pytest.mark.parametrize("args", NAMING_AN_ACCOUNT + NAMING_A_CLUSTER,
                         ids=[" ".join(a[:2]) for a in NAMING_AN_ACCOUNT + NAMING_A_CLUSTER])
def test_an_unknown_account_or_cluster_is_an_error(env: str, args: list[str]) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "NotFound" in r.output or "no " in r.output, r.output
    assert "Traceback" not in r.output
