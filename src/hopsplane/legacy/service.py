"""The cleanup's use cases. Each takes a connection whose transaction the edge owns: the
edge commits (migrate, restore, generate) or rolls back (--dry-run, plan, verify).

migrate, inside that ONE transaction: lock the 17 tables (with a lock timeout), back them up
with COPY and check the backup, move them to a staging schema (metadata only), create the new
schema with the Alembic migrations on the same connection, move the data set-based, verify,
and only then drop (or archive) the staged tables. PostgreSQL DDL is transactional, so a
crash or kill at any moment leaves either the untouched legacy database or the finished one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hopsplane.config import normalise_database_url
from hopsplane.credits import service as credits
from hopsplane.credits.rules import DEFAULT_THRESHOLDS
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate as schema_migrate
from hopsplane.errors import Conflict, Unavailable
from hopsplane.legacy import backup, bulk, drop, transform, verify
from hopsplane.legacy.ddl import (
    FINANCIAL_EXPECTED_EMPTY,
    FOLDED_INTO_USERS,
    LEGACY_TABLES,
    MIGRATED,
    STAGING_SCHEMA,
)
from hopsplane.legacy.inspect import (
    Anomaly,
    State,
    detect_state,
    find_anomalies,
    other_connections,
    q,
    row_counts,
)
from hopsplane.legacy.restore import load_backup, restore_into_public

StepHook = Callable[[str, Literal["start", "done"]], None]

VERIFY_SCHEMA = "legacy_verify"
BULK_TABLES = ("users", "account_clusters", "usage_tracking", "credits_ledger", "team_invites")
"""New tables loaded with their keys deferred (hopsworks_clusters is small; team_invites
stays empty)."""


def _no_hook(name: str, phase: Literal["start", "done"]) -> None:
    return None


@dataclass
class PlanReport:
    state: State
    counts: dict[str, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    other_connections: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "blocking"]

    @property
    def can_migrate(self) -> bool:
        """migrate would succeed: a clean legacy database, or a finished one (nothing to do)."""
        return self.state.kind == "migrated" or (self.state.kind == "legacy" and not self.blocking)


@dataclass
class MigrationReport:
    outcome: Literal["migrated", "nothing to do"]
    plan: PlanReport | None = None
    moved: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    checks: list[verify.Check] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    backup_dir: Path | None = None


@contextmanager
def connect(url: str, *, application_name: str = "hopsplane-legacy") -> Iterator[Connection]:
    """One connection for one command, in UTC, without a statement timeout."""
    engine = create_engine(
        normalise_database_url(url),
        poolclass=pool.NullPool,
        connect_args={"options": "-c timezone=UTC -c statement_timeout=0",
                      "application_name": application_name},
    )
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def other_connections_of(conn: Connection) -> list[str]:
    with conn.begin() as tx:
        found = other_connections(conn)
        tx.rollback()
    return found


def actions() -> dict[str, str]:
    out = {
        "users": "migrate -> users (every user an account owner; extra columns in metadata)",
        "hopsworks_clusters": "migrate -> hopsworks_clusters (same ids, secrets encrypted)",
        "user_hopsworks_assignments": "migrate -> account_clusters (+ users.hopsworks_project_id)",
        "user_credits": "migrate -> credits_ledger (purchase, grant, usage entries)",
        "usage_daily": "migrate -> usage_tracking (summed per user and date)",
    }
    for table in LEGACY_TABLES:
        if table in out:
            continue
        what = "retire (drop, or archive with --keep-legacy)"
        if table in FOLDED_INTO_USERS:
            what += "; rows kept in users.metadata.legacy"
        if table in FINANCIAL_EXPECTED_EMPTY:
            what += "; must be empty unless --allow-drop-nonempty"
        out[table] = what
    return out


def plan(conn: Connection, allow_drop_nonempty: frozenset[str] = frozenset(),
         *, blocking_only: bool = False) -> PlanReport:
    """Read-only: state, row counts, actions and anomalies (only the blocking ones when
    ``blocking_only``)."""
    state = detect_state(conn)
    schema = "public"
    report = PlanReport(state, other_connections=other_connections(conn))
    if state.kind != "legacy":
        return report
    report.counts = row_counts(conn, schema)
    report.anomalies = find_anomalies(conn, schema, report.counts, allow_drop_nonempty,
                                      blocking_only=blocking_only)
    report.actions = actions()
    return report


def _lock_all(conn: Connection, lock_timeout: str) -> None:
    """ACCESS EXCLUSIVE on the 17 tables, giving up after lock_timeout (savepoint, so the
    error is reported cleanly and nothing is half-locked)."""
    tables = ", ".join(q("public", t) for t in LEGACY_TABLES)
    try:
        with conn.begin_nested():
            conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":
            raise
        others = other_connections(conn)
        raise Unavailable(
            f"could not lock the legacy tables within {lock_timeout}: another session holds "
            "them. Stop the application and retry. Other connections: "
            + ("; ".join(others) or "none visible")
        ) from exc


def _session_settings(conn: Connection, lock_timeout: str) -> None:
    conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": lock_timeout})
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text("SET LOCAL work_mem = '256MB'"))
    conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    conn.execute(text("SET LOCAL timezone = 'UTC'"))


def migrate(
    conn: Connection,
    backup_dir: Path,
    box: SecretBox,
    *,
    keep_legacy: bool = False,
    allow_drop_nonempty: frozenset[str] = frozenset(),
    lock_timeout: str = "10s",
    on_step: StepHook = _no_hook,
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS,
) -> MigrationReport:
    """Everything, inside the caller's transaction; raises (and changes nothing once the
    caller rolls back) on any refusal or mismatch."""
    timings: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        on_step(name, "start")
        t0 = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - t0
        on_step(name, "done")

    with step("inspect"):
        state = detect_state(conn)
        if state.kind == "migrated":
            return MigrationReport("nothing to do", timings=timings)
        if state.kind != "legacy":
            raise Conflict(
                f"this is not the legacy database ({state.kind}): "
                + ("; ".join(state.differences) or "it has no tables")
            )
    with step("lock"):
        _session_settings(conn, lock_timeout)
        _lock_all(conn, lock_timeout)
    with step("plan"):
        report_plan = plan(conn, allow_drop_nonempty, blocking_only=True)
        if report_plan.blocking:
            raise Conflict(
                "migration refused: " + "; ".join(
                    f"{a.table}: {a.detail} ({a.count}"
                    + (f", e.g. {', '.join(a.examples)}" if a.examples else "") + ")"
                    for a in report_plan.blocking
                )
            )
    with step("backup"):
        manifest = backup.write_backup(conn, "public", LEGACY_TABLES, backup_dir)
    with step("check backup"):
        backup.check_backup(conn, "public", backup_dir, manifest, report_plan.counts)
    with step("stage"):
        conn.execute(text(f'CREATE SCHEMA "{STAGING_SCHEMA}"'))
        for table in LEGACY_TABLES:
            conn.execute(text(f'ALTER TABLE {q("public", table)} SET SCHEMA "{STAGING_SCHEMA}"'))
    with step("schema"):
        schema_migrate.upgrade_on(conn)
        _session_settings(conn, lock_timeout)
    moved: dict[str, int] = {}
    s = STAGING_SCHEMA
    with step("drop keys"):
        keys = bulk.drop_keys(conn, BULK_TABLES)
    with step("users"):
        moved["users"] = int(conn.execute(text(transform.users_sql(s))).rowcount)
    with step("hopsworks_clusters"):
        moved["hopsworks_clusters"] = transform.move_clusters(conn, s, box)
    with step("account_clusters"):
        moved["account_clusters"] = _load_account_clusters(conn, s)
    with step("credits_ledger"):
        moved["credits_ledger"] = int(conn.execute(text(transform.ledger_sql(s))).rowcount)
    with step("usage_tracking"):
        moved["usage_tracking"] = _load_usage(conn, s)
    with step("rebuild keys"):
        bulk.create_keys(conn, keys)
    # overdrawn legacy accounts are suspended like any other (announced by the jobs this
    # queues), and low balances get their notice
    with step("standing"), Session(bind=conn) as session:
        credits.refresh_standings(session, thresholds)
    with step("verify"):
        checks = verify.run_checks(conn, s, box)
        verify.require_all(checks)
        after = verify.counts_after(conn)
    with step("drop"):
        retired = drop.retire(conn, s, keep_legacy=keep_legacy)
    return MigrationReport(
        "migrated", plan=report_plan, moved=moved, counts_after=after, checks=checks,
        retired=retired, timings=timings, backup_dir=backup_dir,
    )


def _load_account_clusters(conn: Connection, s: str) -> int:
    """Without the per-row counting trigger; current_users set once from the loaded rows
    (with its guard off for that one statement); both triggers on again afterwards."""
    with bulk.triggers_disabled(conn, "account_clusters",
                                transform.BULK_TRIGGERS["account_clusters"]):
        n = int(conn.execute(text(transform.account_clusters_sql(s))).rowcount)
        with bulk.triggers_disabled(conn, "hopsworks_clusters",
                                    transform.CURRENT_USERS_GUARD):
            conn.execute(text(transform.CURRENT_USERS_SQL))
    return n


def _load_usage(conn: Connection, s: str) -> int:
    """Without the per-row price-override trigger (its effect applied once, set-based), in
    full pages (the legacy days are history; the table's fillfactor is restored for the
    rows written later)."""
    with bulk.triggers_disabled(conn, "usage_tracking",
                                transform.BULK_TRIGGERS["usage_tracking"]):
        with bulk.packed(conn, "usage_tracking"):
            n = sum(int(conn.execute(text(sql)).rowcount) for sql in transform.usage_sql(s))
        conn.execute(text(transform.PRICE_OVERRIDES_SQL))
    return n


def verify_against_backup(conn: Connection, backup_dir: Path, box: SecretBox
                          ) -> tuple[dict[str, Any], list[verify.Check]]:
    """Load the backup into a scratch schema and re-run the checks against the new tables.
    The caller rolls the transaction back (nothing stays behind)."""
    state = detect_state(conn)
    if state.kind != "migrated":
        raise Conflict(f"the database is not a finished migration ({state.kind})")
    conn.execute(text(f'CREATE SCHEMA "{VERIFY_SCHEMA}"'))
    manifest = load_backup(conn, VERIFY_SCHEMA, backup_dir, constraints=False)
    return manifest, verify.run_checks(conn, VERIFY_SCHEMA, box, only_legacy_entries=True)


def restore(conn: Connection, backup_dir: Path) -> dict[str, int]:
    manifest = restore_into_public(conn, backup_dir)
    return {t: int(e["rows"]) for t, e in manifest["tables"].items()}


__all__ = ["MIGRATED", "MigrationReport", "PlanReport", "connect", "migrate", "plan",
           "restore", "verify_against_backup"]
