"""What a new operator reaches for first: make someone an admin, find an
account by email, the connection string of the database in use, whole ids."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.db.engine import Database
from tests import factories

runner = CliRunner()


def _setup(url: str) -> tuple[str, str, str]:
    db = Database(url)
    try:
        with db.transaction() as s:
            cluster = factories.make_cluster(s)
            owner = factories.make_user(s, cluster=cluster)
            member = factories.make_user(s, owner=owner)
            factories.post(s, owner, "grant", "12.50")
        return owner, member, str(cluster)
    finally:
        db.dispose()


def test_find_by_email_or_id_shows_owner_members_cluster_balance(env: str) -> None:
    owner, member, cluster = _setup(env)
    member_email = f"{member[6:]}@example.com"
    r = runner.invoke(app, ["accounts", "find", member_email.upper()])
    assert r.exit_code == 0, r.output
    assert owner in r.output and member in r.output and cluster in r.output
    assert "$12.50" in r.output and "good standing" in r.output
    as_json = json.loads(runner.invoke(app, ["accounts", "find", owner, "--json"]).output)
    assert as_json["owner"]["id"] == owner and as_json["balance"] == "12.50"
    assert [m["id"] for m in as_json["members"]] == [member]
    assert as_json["cluster"]["hopsworks_cluster_id"] == cluster
    assert as_json["auto_topup"]["status"] == "off" and "auto top-up  off" in r.output
    missing = runner.invoke(app, ["accounts", "find", "nobody@example.com"])
    assert missing.exit_code == 1 and "signing in once" in missing.output


def test_admins_grant_and_revoke_by_email(env: str) -> None:
    owner, _member, _cluster = _setup(env)
    email = f"{owner[6:]}@example.com"

    def is_admin() -> bool:
        with psycopg.connect(env.replace("postgresql+psycopg://", "postgresql://")) as c:
            row = c.execute("SELECT is_platform_admin FROM users WHERE id = %s",
                            (owner,)).fetchone()
            assert row is not None
            return bool(row[0])

    assert not is_admin()
    r = runner.invoke(app, ["admins", "grant", email])
    assert r.exit_code == 0 and "is a platform admin" in r.output, r.output
    assert is_admin()
    assert runner.invoke(app, ["admins", "revoke", owner]).exit_code == 0
    assert not is_admin()
    nobody = runner.invoke(app, ["admins", "grant", "nobody@example.com"])
    assert nobody.exit_code == 1 and "NotFound" in nobody.output


def test_db_url_is_the_database_in_use(env: str) -> None:
    r = runner.invoke(app, ["db", "url"])
    assert r.exit_code == 0, r.output
    printed = r.output.strip()
    assert printed.startswith("postgresql://")
    with psycopg.connect(printed) as conn:
        assert conn.execute("SELECT count(*) FROM credits_ledger").fetchone() == (0,)


def test_db_url_of_several_hosts_is_libpqs_key_value_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hopsplane.config import get_settings

    monkeypatch.setenv("HOPSPLANE_DATABASE_URL",
                       "postgresql://u@h1:5433,h2:5434/db?target_session_attrs=read-write")
    get_settings.cache_clear()
    try:
        r = runner.invoke(app, ["db", "url"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    printed = r.output.strip()
    assert not printed.startswith("postgresql") and "h1" in printed and "h2" in printed
    assert "target_session_attrs=read-write" in printed
    assert psycopg.conninfo.conninfo_to_dict(printed)["dbname"] == "db"


def test_clusters_list_keeps_whole_ids_when_narrow_and_takes_json(env: str) -> None:
    _owner, _member, cluster = _setup(env)
    narrow = runner.invoke(app, ["clusters", "list"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and cluster in narrow.output, narrow.output
    listed = json.loads(runner.invoke(app, ["clusters", "list", "--json"]).output)
    assert [c["id"] for c in listed] == [cluster]
    assert '"api_key"' not in json.dumps(listed) and "hw-auth-key" not in json.dumps(listed)


def test_cluster_names_are_unique_ignoring_case(env: str) -> None:
    def add(name: str) -> object:
        return runner.invoke(app, ["clusters", "add", name, "--api-url",
                                   "https://hw.example.com"], input="k1\nk2\n")

    first = add("eu-1")
    assert first.exit_code == 0, first.output
    again = add("EU-1")
    assert again.exit_code == 1 and "already has this name" in again.output  # type: ignore[attr-defined]
    other = add("eu-2")
    assert other.exit_code == 0  # type: ignore[attr-defined]
    listed = json.loads(runner.invoke(app, ["clusters", "list", "--json"]).output)
    renamed = runner.invoke(app, ["clusters", "update", listed[1]["id"], "--name", "Eu-1"])
    assert renamed.exit_code == 1 and "already has this name" in renamed.output
