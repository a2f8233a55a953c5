"""The operator commands, run in-process with the environment an operator would set."""

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.db import migrate
from tests.pg import PgServer

runner = CliRunner()


def _seed(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')"))
        conn.execute(text(
            "INSERT INTO credits_ledger (account_owner_id, seq, amount, balance, type, "
            "idempotency_key) VALUES ('u1', 1, 5, 5, 'grant', 'g1')"))
        conn.execute(text(
            "INSERT INTO credits_ledger (account_owner_id, seq, prev_seq, prev_balance, amount, "
            "balance, type, idempotency_key) VALUES ('u1', 2, 1, 5, 7, 12, 'grant', 'g2')"))
    engine.dispose()


def test_verify_passes_then_fails_on_a_broken_chain(env: str) -> None:
    _seed(env)
    ok = runner.invoke(app, ["credits", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "2 entries in 1 accounts" in ok.output
    engine = create_engine(env)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE credits_ledger SET amount = 6, balance = 6 WHERE seq = 1"))
    engine.dispose()
    bad = runner.invoke(app, ["credits", "verify"])
    assert bad.exit_code == 1
    assert "u1 #2: balance 12.00 <> previous balance 6.00 + amount 7.00" in bad.output


def test_balance_and_history(env: str) -> None:
    _seed(env)
    r = runner.invoke(app, ["credits", "balance", "u1"])
    assert r.exit_code == 0 and "u1@example.com (u1): 12.00 USD" in r.output, r.output
    h = runner.invoke(app, ["credits", "history", "u1", "--limit", "1"])
    assert h.exit_code == 0 and "12.00" in h.output and "5.00" not in h.output


def test_a_user_mistake_is_a_message_not_a_traceback(env: str) -> None:
    r = runner.invoke(app, ["credits", "balance", "nobody"])
    assert r.exit_code == 1
    assert "NotFound: no account 'nobody'" in r.output
    assert "Traceback" not in r.output


def test_db_commands(env: str, pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["db", "check"]).exit_code == 0
    empty = pg.empty_database()
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", empty)
    behind = runner.invoke(app, ["db", "check"])
    assert behind.exit_code == 1 and "db upgrade" in behind.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    cur = runner.invoke(app, ["db", "current"])
    assert f"current: {migrate.heads()[0]}" in cur.output
    assert runner.invoke(app, ["db", "downgrade", "base"]).exit_code == 0
    assert "current: base" in runner.invoke(app, ["db", "current"]).output


def test_configuration_errors_say_what_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPSPLANE_ENVIRONMENT", "production")
    monkeypatch.delenv("HOPSPLANE_SECRET_KEY", raising=False)
    r = runner.invoke(app, ["db", "current"])
    assert r.exit_code == 2
    assert "HOPSPLANE_SECRET_KEY is not set" in r.output
