"""What keeps the move safe: one transaction, verification, refusals, the way back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import create_engine, text

from hopsplane.crypto import SecretBox
from hopsplane.errors import Conflict, Unavailable
from hopsplane.legacy import service
from hopsplane.legacy.ddl import ARCHIVE_SCHEMA, RETIRED
from hopsplane.legacy.inspect import detect_state, tables_in
from tests.factories import TEST_ENCRYPTION_KEY, make_legacy
from tests.legacy.helpers import execute, run_migrate, scalar, snapshot
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]


class Boom(Exception):
    pass


@pytest.mark.slow  # a killed process and a rerun
def test_a_kill_in_the_middle_leaves_the_legacy_database_and_a_rerun_finishes(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    before = snapshot(legacy_url)
    marker = tmp_path / "reached"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from hopsplane.crypto import SecretBox
        from hopsplane.legacy import service

        def hook(name, phase):
            if name == "verify" and phase == "start":
                Path({str(marker)!r}).write_text("data moved, not committed")
                time.sleep(600)

        with service.connect({legacy_url!r}) as conn, conn.begin():
            service.migrate(conn, Path({str(tmp_path / "b1")!r}),
                            SecretBox([{_key()!r}]), on_step=hook)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, "the migration process ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the new tables exist inside the uncommitted transaction; kill -9 now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the server notices the dead client and rolls back; wait until its backend is gone
    deadline = time.monotonic() + 60
    while scalar(legacy_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                 "current_database() AND application_name = 'hopsplane-legacy'"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert snapshot(legacy_url) == before
    assert run_migrate(legacy_url, tmp_path / "b2", box).outcome == "migrated"
    assert run_migrate(legacy_url, tmp_path / "b3", box).outcome == "nothing to do"


def _key() -> str:
    return TEST_ENCRYPTION_KEY


def test_a_failure_after_the_data_move_rolls_everything_back(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    before = snapshot(legacy_url)

    def hook(name: str, phase: Literal["start", "done"]) -> None:
        if name == "drop" and phase == "start":
            raise Boom("injected")

    with pytest.raises(Boom):
        run_migrate(legacy_url, tmp_path, box, on_step=hook)
    assert snapshot(legacy_url) == before
    engine = create_engine(legacy_url)
    with engine.connect() as conn:
        assert detect_state(conn).kind == "legacy"
        assert tables_in(conn, "hopsplane") == set()
    engine.dispose()


def test_verification_catches_a_planted_mismatch_and_rolls_back(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    before = snapshot(legacy_url)

    def plant(name: str, phase: Literal["start", "done"]) -> None:
        if name == "verify" and phase == "start":
            conn.execute(text(
                "INSERT INTO credits_ledger (account_owner_id, seq, prev_seq, prev_balance, "
                "amount, balance, type, idempotency_key) SELECT account_owner_id, seq + 1, seq, "
                "balance, 0.01, balance + 0.01, 'grant', 'planted' FROM credits_ledger "
                "WHERE account_owner_id = 'auth0|0000000001' ORDER BY seq DESC LIMIT 1"))

    with pytest.raises(Conflict, match="remaining credit equals the balance") as err, \
            service.connect(legacy_url) as conn, conn.begin():
        service.migrate(conn, tmp_path, box, on_step=plant)
    assert "auth0|0000000001" in str(err.value)
    assert snapshot(legacy_url) == before


def test_verify_command_catches_a_mismatch_after_the_fact(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    run_migrate(legacy_url, tmp_path, box)
    with service.connect(legacy_url) as conn, conn.begin() as tx:
        _, checks = service.verify_against_backup(conn, tmp_path, box)
        tx.rollback()
    assert all(c.ok for c in checks)
    execute(legacy_url,
            "UPDATE usage_tracking SET compute_units = compute_units + 1, user_breakdown = "
            "jsonb_build_object(account_owner_id, compute_units + 1) WHERE id = "
            "(SELECT id FROM usage_tracking ORDER BY account_owner_id, date LIMIT 1)")
    with service.connect(legacy_url) as conn, conn.begin() as tx:
        _, checks = service.verify_against_backup(conn, tmp_path, box)
        tx.rollback()
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == ["usage_tracking: compute units per (user, date)"]
    assert failed[0].problems == 1
    assert "legacy_verify" not in str(scalar(legacy_url, "SELECT string_agg(nspname, ',') FROM pg_namespace"))


_CONSTRAINTS = (
    "SELECT string_agg(d, '; ' ORDER BY d) FROM (SELECT conname || ' on ' || "
    "conrelid::regclass || ': ' || pg_get_constraintdef(oid) AS d FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace) x"
)


@pytest.mark.slow  # a whole cleanup, backup and restore
def test_restore_gives_back_identical_tables(
    pg: PgServer, legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    before = snapshot(legacy_url)
    next_metric = scalar(legacy_url, "SELECT last_value FROM usage_metrics_id_seq")
    constraints = scalar(legacy_url, _CONSTRAINTS)
    run_migrate(legacy_url, tmp_path, box)
    target = pg.empty_database()
    with service.connect(target) as conn, conn.begin():
        counts = service.restore(conn, tmp_path)
    assert counts == {t: len(rows) for t, rows in before.items()}
    assert snapshot(target) == before
    assert scalar(target, "SELECT last_value FROM usage_metrics_id_seq") == next_metric
    engine = create_engine(target)
    with engine.connect() as conn:
        assert detect_state(conn).kind == "legacy"
    engine.dispose()
    assert scalar(target, _CONSTRAINTS) == constraints
    # ... and the restored database migrates again
    assert run_migrate(target, tmp_path / "again", box).outcome == "migrated"


def test_restore_refuses_a_damaged_backup_and_a_non_empty_database(
    pg: PgServer, legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    run_migrate(legacy_url, tmp_path, box)
    with pytest.raises(Conflict, match="empty database"), \
            service.connect(legacy_url) as conn, conn.begin():
        service.restore(conn, tmp_path)
    path = tmp_path / "user_credits.csv"
    data = bytearray(path.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    target = pg.empty_database()
    with pytest.raises(Conflict, match=r"user_credits\.csv does not match its SHA-256"), \
            service.connect(target) as conn, conn.begin():
        service.restore(conn, tmp_path)
    assert snapshot(target) == {}


def test_a_non_empty_financial_table_is_refused_unless_allowed(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    execute(legacy_url,
            "INSERT INTO billing_history (user_id, amount, description, created_at) VALUES "
            "('auth0|0000000001', 49.00, 'old invoice', '2024-01-01')")
    before = snapshot(legacy_url)
    with pytest.raises(Conflict, match=r"billing_history.*--allow-drop-nonempty billing_history"):
        run_migrate(legacy_url, tmp_path, box)
    assert snapshot(legacy_url) == before
    with pytest.raises(Conflict, match="billing_history"):
        run_migrate(legacy_url, tmp_path, box, allow_drop_nonempty=frozenset({"invoices"}))
    report = run_migrate(legacy_url, tmp_path, box,
                         allow_drop_nonempty=frozenset({"billing_history"}))
    assert report.outcome == "migrated"
    assert "old invoice" in (tmp_path / "billing_history.csv").read_text()


def test_keep_legacy_archives_the_twelve_retired_tables(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    before = snapshot(legacy_url)
    report = run_migrate(legacy_url, tmp_path, box, keep_legacy=True)
    assert report.outcome == "migrated"
    archived = snapshot(legacy_url, ARCHIVE_SCHEMA)
    assert set(archived) == set(RETIRED)
    for table in RETIRED:
        assert archived[table] == before[table]
    assert any("dropped foreign key feature_groups" in line for line in report.retired)
    # the archive stays out of the models' way
    from hopsplane.db import migrate as schema_migrate

    schema_migrate.check(legacy_url)


def test_an_unrecognised_schema_is_refused_with_what_differs(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    execute(legacy_url, "ALTER TABLE usage_daily DROP COLUMN gpu_hours",
            "ALTER TABLE users ADD COLUMN nickname text", "CREATE TABLE extra (id int)")
    with pytest.raises(Conflict) as err:
        run_migrate(legacy_url, tmp_path, box)
    message = str(err.value)
    assert "usage_daily.gpu_hours is missing" in message
    assert "users.nickname is not part of the legacy schema" in message
    assert "table extra is not part of the legacy schema" in message


def test_blocking_data_is_refused_and_named(legacy_url: str, box: SecretBox, tmp_path: Path) -> None:
    execute(legacy_url,
            "INSERT INTO usage_daily (user_id, date, cpu_hours) VALUES (NULL, '2025-03-01', 1)",
            "UPDATE users SET stripe_customer_id = 'cus_1' WHERE id = 'auth0|0000000002'")
    with pytest.raises(Conflict) as err:
        run_migrate(legacy_url, tmp_path, box)
    assert "usage rows without an existing user" in str(err.value)
    assert "cus_1" in str(err.value)


def test_locks_wait_at_most_the_lock_timeout_and_other_connections_are_named(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    engine = create_engine(legacy_url, connect_args={"application_name": "the-app"})
    holder = engine.connect()
    holder.execute(text("SELECT count(*) FROM users"))  # holds ACCESS SHARE until rollback
    try:
        with service.connect(legacy_url) as conn:
            assert any("the-app" in c for c in service.other_connections_of(conn))
        started = time.monotonic()
        with pytest.raises(Unavailable, match="could not lock the legacy tables within 200ms"):
            run_migrate(legacy_url, tmp_path, box, lock_timeout="200ms")
        assert time.monotonic() - started < 60
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    assert run_migrate(legacy_url, tmp_path, box).outcome == "migrated"


def test_two_migrations_at_once_one_migrates_the_other_has_nothing_to_do(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            outcomes.append(run_migrate(legacy_url, tmp_path / str(i), box,
                                        lock_timeout="120s").outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the loser either waited and found nothing to do, or found the tables gone mid-lock
    assert outcomes.count("migrated") == 1
    assert len(outcomes) + len(errors) == 2
    for exc in errors:
        assert isinstance(exc, Conflict | Unavailable) or "does not exist" in str(exc)


def test_generate_with_two_users_gives_the_plans_counts(pg: PgServer) -> None:
    url = make_legacy(pg, users=2)
    counts = {t: len(r) for t, r in snapshot(url).items()}
    assert counts["users"] == 2
    assert counts["hopsworks_clusters"] == 1
    assert counts["user_hopsworks_assignments"] == 2
    assert counts["user_credits"] == 2
    assert counts["usage_daily"] == 3
    assert all(counts[t] == 0 for t in RETIRED)


def test_migrate_refuses_an_empty_database(pg: PgServer, box: SecretBox, tmp_path: Path) -> None:
    with pytest.raises(Conflict, match="not the legacy database"):
        run_migrate(pg.empty_database(), tmp_path, box)


def test_an_account_on_two_clusters_or_an_overfull_cluster_is_refused_and_named(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    """The new schema holds an account on one cluster and no cluster above max_users."""
    execute(legacy_url,
            "INSERT INTO hopsworks_clusters (name, api_url, api_key, max_users) "
            "VALUES ('second', 'https://second.example.com', 'k2', 1)",
            "INSERT INTO user_hopsworks_assignments (id, user_id, hopsworks_cluster_id, "
            "assigned_at) SELECT gen_random_uuid(), u.id, c.id, now() FROM users u, "
            "hopsworks_clusters c WHERE c.name = 'second' ORDER BY u.id LIMIT 2")
    with pytest.raises(Conflict) as err:
        run_migrate(legacy_url, tmp_path, box)
    assert "assigned to more than one cluster" in str(err.value)
    assert "second: 2 users, max 1" in str(err.value)
