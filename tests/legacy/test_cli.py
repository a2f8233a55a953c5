"""`hopsplane legacy ...` as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.legacy.ddl import LEGACY_TABLES
from tests.legacy.helpers import execute, snapshot
from tests.pg import PgServer

runner = CliRunner()


def test_plan_reports_counts_and_anomalies_and_exits_zero(legacy_url: str, settings_env: None) -> None:
    result = runner.invoke(app, ["legacy", "plan", "--database-url", legacy_url])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for table in LEGACY_TABLES:
        assert table in out
    for code in ("duplicate_assignments", "usage_collisions", "negative_remaining_credit",
                 "current_users_disagree", "email_case_duplicates", "rows_in_unused_table",
                 "orphan_rows_in_retired_tables", "missing_assigned_at"):
        assert code in out, code
    assert "User2@example.com / user2@example.com" in out
    assert "migrate would succeed" in out
    as_json = runner.invoke(app, ["legacy", "plan", "--database-url", legacy_url, "--json"])
    assert as_json.exit_code == 0, as_json.output
    planned = json.loads(as_json.stdout)
    assert planned["can_migrate"] is True and planned["state"]["kind"] == "legacy"
    assert {t["table"] for t in planned["tables"]} == set(LEGACY_TABLES)
    assert "usage_collisions" in {a["code"] for a in planned["anomalies"]}


def test_plan_exits_non_zero_on_a_blocking_anomaly_and_names_the_table(
    legacy_url: str, settings_env: None
) -> None:
    execute(legacy_url, "INSERT INTO invoices (user_id, amount_due) VALUES ('auth0|0000000001', 5)")
    result = runner.invoke(app, ["legacy", "plan", "--database-url", legacy_url])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "blocking nonempty_financial_table in invoices" in out
    allowed = runner.invoke(app, ["legacy", "plan", "--database-url", legacy_url,
                                  "--allow-drop-nonempty", "invoices"])
    assert allowed.exit_code == 0, allowed.output
    wrong = runner.invoke(app, ["legacy", "plan", "--database-url", legacy_url,
                                "--allow-drop-nonempty", "users"])
    assert wrong.exit_code == 2


def test_plan_says_what_differs_from_the_legacy_schema(pg: PgServer, settings_env: None) -> None:
    url = pg.migrated_database()
    result = runner.invoke(app, ["legacy", "plan", "--database-url", url])
    assert result.exit_code == 0
    assert "already on the new schema" in result.output
    url = pg.empty_database()
    execute(url, "CREATE TABLE users (id text)")
    result = runner.invoke(app, ["legacy", "plan", "--database-url", url])
    assert result.exit_code == 1
    assert "users.email is missing" in " ".join(result.output.split())


@pytest.mark.slow  # a whole cleanup, backup and restore
def test_dry_run_changes_nothing_then_migrate_verify_restore(
    pg: PgServer, legacy_url: str, tmp_path: Path, settings_env: None
) -> None:
    before = snapshot(legacy_url)
    dry = runner.invoke(app, ["legacy", "migrate", "--database-url", legacy_url,
                              "--backup-dir", str(tmp_path / "dry"), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "credits_ledger" in dry.output
    assert "would drop " in dry.output and "  dropped " not in dry.output  # says what it would do
    assert snapshot(legacy_url) == before
    assert (tmp_path / "dry" / "manifest.json").exists()

    backup = tmp_path / "real"
    done = runner.invoke(app, ["legacy", "migrate", "--database-url", legacy_url,
                               "--backup-dir", str(backup)])
    assert done.exit_code == 0, done.output
    assert "migrated" in done.output and "would drop" not in done.output
    again = runner.invoke(app, ["legacy", "migrate", "--database-url", legacy_url,
                                "--backup-dir", str(tmp_path / "again")])
    assert again.exit_code == 0 and "nothing to do" in again.output

    ok = runner.invoke(app, ["legacy", "verify", "--database-url", legacy_url,
                             "--backup-dir", str(backup)])
    assert ok.exit_code == 0, ok.output
    execute(legacy_url, "DELETE FROM account_clusters WHERE account_owner_id = 'auth0|0000000003'")
    bad = runner.invoke(app, ["legacy", "verify", "--database-url", legacy_url,
                              "--backup-dir", str(backup)])
    assert bad.exit_code == 1
    assert "FAIL account_clusters" in bad.output

    target = pg.empty_database()
    restored = runner.invoke(app, ["legacy", "restore", "--database-url", target,
                                   "--backup-dir", str(backup)])
    assert restored.exit_code == 0, restored.output
    assert snapshot(target) == before
    refused = runner.invoke(app, ["legacy", "restore", "--database-url", target,
                                  "--backup-dir", str(backup)])
    assert refused.exit_code == 1 and "empty database" in refused.output


def test_migrate_refusal_is_a_message_not_a_traceback(legacy_url: str, tmp_path: Path,
                                                       settings_env: None) -> None:
    execute(legacy_url, "INSERT INTO credit_transactions (user_id, amount, type) VALUES "
                        "('auth0|0000000001', 5, 'purchase')")
    result = runner.invoke(app, ["legacy", "migrate", "--database-url", legacy_url,
                                 "--backup-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "Conflict" in result.output and "credit_transactions" in result.output
    assert "Traceback" not in result.output


def test_generate_and_help(pg: PgServer, settings_env: None) -> None:
    url = pg.empty_database()
    result = runner.invoke(app, ["legacy", "generate", "--users", "2", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert {t: len(r) for t, r in snapshot(url).items()}["usage_daily"] == 3
    again = runner.invoke(app, ["legacy", "generate", "--users", "2", "--database-url", url])
    assert again.exit_code == 1 and "empty database" in again.output
    for cmd in ("plan", "migrate", "verify", "restore", "generate"):
        help_ = runner.invoke(app, ["legacy", cmd, "--help"])
        assert help_.exit_code == 0 and "--database-url" in help_.output
    no_url = runner.invoke(app, ["legacy", "plan"])
    assert no_url.exit_code == 2 and "--database-url" in no_url.output
