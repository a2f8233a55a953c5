"""Every rule of the move, on one generated legacy database migrated once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from hopsplane.credits.repository import chain_breaks
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate as schema_migrate
from hopsplane.db.models import PUBLIC_TABLES
from hopsplane.legacy import service
from hopsplane.legacy.backup import file_sha256
from hopsplane.legacy.ddl import LEGACY_TABLES
from hopsplane.legacy.generate import sizes
from hopsplane.legacy.inspect import tables_in
from tests.factories import TEST_ENCRYPTION_KEY, make_legacy
from tests.legacy.helpers import run_migrate, snapshot
from tests.pg import PgServer

_KEY = TEST_ENCRYPTION_KEY


@dataclass
class Migrated:
    url: str
    before: dict[str, list[str]]
    backup: Path
    report: service.MigrationReport
    box: SecretBox


@pytest.fixture(scope="module")
def migrated(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Migrated:
    url = make_legacy(pg)
    before = snapshot(url)
    # the legacy rows as dicts, to compare with what the migration produced
    backup = tmp_path_factory.mktemp("backup")
    box = SecretBox([_KEY])
    report = run_migrate(url, backup, box)
    return Migrated(url, before, backup, report, box)


def rows(url: str, sql: str, **params: object) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def legacy(m: Migrated, table: str) -> list[dict[str, object]]:
    """Rows of a legacy table, read back from the backup by restoring it in a scratch db."""
    return [json.loads(r) for r in _legacy_json(m, table)]


_cache: dict[tuple[str, str], list[str]] = {}


def _legacy_json(m: Migrated, table: str) -> list[str]:
    key = (m.url, table)
    if key not in _cache:
        with service.connect(m.url) as conn, conn.begin() as tx:
            from hopsplane.legacy.restore import load_backup

            conn.execute(text("CREATE SCHEMA peek"))
            load_backup(conn, "peek", m.backup, constraints=False)
            for t in LEGACY_TABLES:
                _cache[(m.url, t)] = [
                    r[0] for r in conn.execute(text(f"SELECT to_jsonb(x)::text FROM peek.{t} x"))
                ]
            tx.rollback()
    return _cache[key]


def test_public_holds_the_plan_tables_and_the_schema_matches_the_models(m: Migrated) -> None:
    engine = create_engine(m.url)
    try:
        with engine.connect() as conn:
            assert tables_in(conn, "public") == set(PUBLIC_TABLES)
            assert tables_in(conn, "legacy_staging") == set()
            assert tables_in(conn, "legacy_archive") == set()
    finally:
        engine.dispose()
    schema_migrate.check(m.url)


@pytest.fixture
def m(migrated: Migrated) -> Migrated:
    return migrated


def test_backup_has_all_17_tables_with_counts_and_hashes(m: Migrated) -> None:
    manifest = json.loads((m.backup / "manifest.json").read_text())
    assert set(manifest["tables"]) == set(LEGACY_TABLES)
    for table, entry in manifest["tables"].items():
        assert entry["rows"] == len(m.before[table]), table
        assert file_sha256(m.backup / entry["file"]) == entry["sha256"]
    assert "CREATE TABLE \"usage_daily\"" in manifest["ddl_sql"]
    assert manifest["ddl"]["usage_metrics"]["sequences"][0]["name"] == "usage_metrics_id_seq"


def test_every_user_is_an_owner_with_nothing_discarded(m: Migrated) -> None:
    old = {u["id"]: u for u in legacy(m, "users")}
    profiles = {p["user_id"]: p for p in legacy(m, "user_profiles")}
    overrides = {p["user_id"]: p for p in legacy(m, "user_pricing_overrides")}
    new = {u["id"]: u for u in rows(m.url, "SELECT * FROM users")}
    assert set(new) == set(old) and len(old) == sizes(400).users
    for uid, u in old.items():
        n = new[uid]
        assert n["account_owner_id"] is None
        assert n["email"] == u["email"]
        expected_name = u["name"] if u["name"] is not None else (profiles.get(uid) or {}).get("full_name")
        assert n["name"] == expected_name
        assert n["is_platform_admin"] == (bool(u["is_admin"]) or u["role"] == "admin")
        kept = n["metadata"]["legacy"]
        assert kept["role"] == u["role"] and kept["status"] == u["status"]
        assert kept["updated_at"] is not None
        if u["cluster_id"]:
            assert kept["cluster_id"] == u["cluster_id"]
        if uid in profiles:
            assert kept["profile"]["company"] == profiles[uid]["company"]
            assert kept["profile"]["phone"] == profiles[uid]["phone"]
        if uid in overrides:
            assert Decimal(str(kept["pricing_override"]["unit_price"])) == Decimal("0.00008")
        for k, v in (u["metadata"] or {}).items():
            assert n["metadata"][k] == v
    # the generator makes user 14 nameless with a profile, 1 an admin flag, 2 an admin role
    assert new["auth0|0000000014"]["name"] == "Full Name 14"
    assert new["auth0|0000000001"]["is_platform_admin"]
    assert new["auth0|0000000002"]["is_platform_admin"]
    assert not new["auth0|0000000004"]["is_platform_admin"]


def test_assignments_collapse_to_the_earliest_with_deterministic_dates(m: Migrated) -> None:
    old = legacy(m, "user_hopsworks_assignments")
    users = {u["id"]: u for u in legacy(m, "users")}
    new = {(r["account_owner_id"], str(r["hopsworks_cluster_id"])): r
           for r in rows(m.url, "SELECT * FROM account_clusters")}
    pairs = {(a["user_id"], a["hopsworks_cluster_id"]) for a in old}
    assert set(new) == pairs
    assert len(old) > len(pairs)  # there were duplicates
    by_pair: dict[tuple[str, str], list[dict[str, object]]] = {}
    for a in old:
        by_pair.setdefault((a["user_id"], a["hopsworks_cluster_id"]), []).append(a)
    from datetime import datetime

    def effective(a: dict[str, object]) -> datetime:
        value = a["assigned_at"] or a["created_at"] or users[str(a["user_id"])]["created_at"]
        return datetime.fromisoformat(str(value))

    for pair, group in by_pair.items():
        first = min(group, key=effective)
        assert new[pair]["assigned_at"] == effective(first), pair
        assert new[pair]["assigned_by"] == first["assigned_by"]
    undated = [a for a in old if a["assigned_at"] is None]
    assert undated
    for a in undated:
        assert new[(a["user_id"], a["hopsworks_cluster_id"])]["assigned_at"] == datetime.fromisoformat(str(a["created_at"]))
    # project id from the earliest assignment that has one
    projects = {r["id"]: r["hopsworks_project_id"] for r in rows(m.url, "SELECT id, hopsworks_project_id FROM users")}
    assert projects["auth0|0000000001"] == 501
    assert projects["auth0|0000000005"] is None  # i % 5 == 0 has no project
    assert projects["auth0|0000000003"] == 503  # the later duplicate had 903


def test_ledger_reproduces_the_remaining_credit_to_the_cent(m: Migrated) -> None:
    old = legacy(m, "user_credits")
    entries = rows(m.url, "SELECT * FROM credits_ledger ORDER BY account_owner_id, seq")
    by_user: dict[str, list[dict[str, object]]] = {}
    for e in entries:
        by_user.setdefault(str(e["account_owner_id"]), []).append(e)
    negative = 0
    for c in old:
        purchased, used, free = (Decimal(str(c[k])) for k in ("total_purchased", "total_used", "free_credits"))
        remaining = purchased + free - used
        mine = by_user.get(str(c["user_id"]), [])
        expected = [(t, a) for t, a in (("purchase", purchased), ("grant", free), ("usage", -used)) if a != 0]
        assert [(e["type"], e["amount"]) for e in mine] == expected
        assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
        assert (mine[-1]["balance"] if mine else Decimal("0")) == remaining
        assert all(e["idempotency_key"] == f"legacy:{c['user_id']}:{e['type']}" for e in mine)
        negative += remaining < 0
    assert negative > 0  # overdrawn users keep their negative balance
    engine = create_engine(m.url)
    try:
        with Session(engine) as s:
            assert chain_breaks(s) == []
    finally:
        engine.dispose()


def test_usage_is_summed_per_user_and_day_with_the_raw_rows_kept(m: Migrated) -> None:
    old = legacy(m, "usage_daily")
    sums: dict[tuple[str, str], Decimal] = {}
    count: dict[tuple[str, str], int] = {}
    for r in old:
        k = (str(r["user_id"]), str(r["date"]))
        sums[k] = sums.get(k, Decimal(0)) + Decimal(str(r["cpu_hours"])) * 10000
        count[k] = count.get(k, 0) + 1
    new = {(r["account_owner_id"], str(r["date"])): r for r in rows(m.url, "SELECT * FROM usage_tracking")}
    assert set(new) == set(sums)
    assert max(count.values()) == 2  # collisions on (user, date) exist and were summed
    for k, units in sums.items():
        n = new[k]
        assert n["compute_units"] == units
        assert n["user_breakdown"] == {k[0]: pytest.approx(float(units))}
        assert len(n["raw_metrics"]["per_cluster"]) == count[k]
        assert n["unit_price"] == Decimal("0.000100")
    collided = next(k for k, c in count.items() if c == 2)
    raw = new[collided]["raw_metrics"]
    parts = [r for r in old if (r["user_id"], str(r["date"])) == collided]
    assert Decimal(str(raw["api_calls"])) == sum(Decimal(str(p["api_calls"])) for p in parts)
    assert Decimal(str(raw["legacy_total_cost"])) == sum(Decimal(str(p["total_cost"])) for p in parts)
    assert {p["hopsworks_cluster_id"] for p in raw["per_cluster"]} == {p["hopsworks_cluster_id"] for p in parts}


def test_clusters_keep_ids_with_encrypted_secrets_mapped_status_and_true_counts(m: Migrated) -> None:
    old = {c["id"]: c for c in legacy(m, "hopsworks_clusters")}
    new = {str(c["id"]): c for c in rows(m.url, "SELECT * FROM hopsworks_clusters")}
    assert set(new) == set(old)
    counts = {str(r["id"]): r["n"] for r in rows(
        m.url, "SELECT hopsworks_cluster_id AS id, count(*) AS n FROM account_clusters GROUP BY 1")}
    for cid, c in old.items():
        n = new[cid]
        assert str(n["api_key"]).startswith("gAAAAA")
        assert m.box.decrypt(str(n["api_key"])) == c["api_key"]
        if c["kubeconfig"] is not None:
            assert m.box.decrypt(str(n["kubeconfig"])) == c["kubeconfig"]
        assert n["current_users"] == counts.get(cid, 0)
        assert n["metadata"]["legacy"]["status"] == c["status"]
        assert n["metadata"]["region"] == c["metadata"]["region"]
    assert sorted(n["status"] for n in new.values()) == ["active", "draining"]


def test_the_bulk_load_leaves_the_triggers_on_and_the_fillfactor_as_the_schema_says(
    m: Migrated,
) -> None:
    """The load switches two row triggers off and packs usage_tracking; afterwards both
    triggers are enabled and work, and the table's fillfactor is the one of revision 0007."""
    engine = create_engine(m.url)
    try:
        with engine.connect() as conn, conn.begin() as tx:
            disabled = conn.execute(text(
                "SELECT tgrelid::regclass || '.' || tgname FROM pg_trigger "
                "WHERE NOT tgisinternal AND tgenabled <> 'O'")).scalars().all()
            assert disabled == []
            options = conn.execute(text(
                "SELECT reloptions FROM pg_class WHERE oid = 'public.usage_tracking'::regclass"
            )).scalar_one()
            assert options == ["fillfactor=40"]
            # the counting trigger: a new account on a cluster raises its current_users
            cluster, before = conn.execute(text(
                "SELECT id, current_users FROM hopsworks_clusters ORDER BY name LIMIT 1")).one()
            conn.execute(text("INSERT INTO users (id, email) VALUES ('auth0|new', 'n@x.io')"))
            conn.execute(text("INSERT INTO account_clusters (account_owner_id, "
                              "hopsworks_cluster_id) VALUES ('auth0|new', :c)"), {"c": cluster})
            after = conn.execute(text("SELECT current_users FROM hopsworks_clusters "
                                      "WHERE id = :c"), {"c": cluster}).scalar_one()
            assert after == before + 1
            # the price trigger: a usage row written after an override takes its price
            conn.execute(text("INSERT INTO hopsplane.price_overrides (account_owner_id, "
                              "effective_from, unit_price, reason) "
                              "VALUES ('auth0|new', '2020-01-01', 0.00005, 'test')"))
            price = conn.execute(text(
                "INSERT INTO usage_tracking (account_owner_id, date, compute_units, "
                "user_breakdown) VALUES ('auth0|new', '2026-01-01', 10, '{\"auth0|new\": 10}') "
                "RETURNING unit_price")).scalar_one()
            assert price == Decimal("0.000050")
            tx.rollback()
    finally:
        engine.dispose()


def test_report_says_what_was_verified_and_dropped(m: Migrated) -> None:
    assert m.report.outcome == "migrated"
    assert all(c.ok for c in m.report.checks) and len(m.report.checks) >= 8
    dropped = [line.removeprefix("dropped ") for line in m.report.retired]
    assert sorted(dropped) == sorted(LEGACY_TABLES)
    # dependency order: every referencing table before the one it references
    assert dropped.index("usage_daily") < dropped.index("users")
    assert dropped.index("subscriptions") < dropped.index("stripe_products")
    assert dropped.index("feature_groups") < dropped.index("clusters")
    assert m.report.counts_after["users"] == sizes(400).users


def test_rerun_after_success_has_nothing_to_do(m: Migrated, tmp_path: Path) -> None:
    report = run_migrate(m.url, tmp_path, m.box)
    assert report.outcome == "nothing to do"
    assert not (tmp_path / "manifest.json").exists()


def test_overdrawn_legacy_accounts_are_suspended_like_any_other(
    legacy_url: str, box: SecretBox, tmp_path: Path
) -> None:
    """The cleanup writes the ledger set-based, not through credits.post; the standing
    rules must still hold: at or below zero is suspended, with the announcement queued."""
    run_migrate(legacy_url, tmp_path / "b", box)
    engine = create_engine(legacy_url)
    try:
        with engine.begin() as conn:
            heads = conn.execute(text(
                "SELECT DISTINCT ON (account_owner_id) account_owner_id, balance "
                "FROM credits_ledger ORDER BY account_owner_id, seq DESC")).all()
            standing = dict(conn.execute(text(
                "SELECT account_owner_id, suspended FROM hopsplane.account_standing")).all())
            pending = {r[0] for r in conn.execute(text(
                "SELECT args ->> 'account' FROM hopsplane.jobs "
                "WHERE task = 'credits.announce_standing' AND args ->> 'kind' = 'suspended' "
                "AND status = 'queued'"))}
    finally:
        engine.dispose()
    overdrawn = {a for a, b in heads if b <= 0}
    assert overdrawn, "the generated legacy data has overdrawn users"
    assert {a for a, s in standing.items() if s} == overdrawn
    assert pending == overdrawn
