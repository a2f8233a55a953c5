"""What an operator types: an account by its owner's email wherever an account id is
taken, a cluster by its name wherever a cluster id is taken; an assignment to the cluster
an account is on; errors whole; each failure said once; no library warning."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from hopsplane.cli.main import app
from hopsplane.config import DEV_ENCRYPTION_KEY
from hopsplane.crypto import SecretBox
from hopsplane.db import migrate
from hopsplane.db.engine import Database
from tests import factories
from tests.live_server import free_port

runner = CliRunner()


def said(result: Result) -> str:
    """The output as one line: rich wraps long lines to the terminal's width."""
    return " ".join(result.output.split())


@dataclass
class World:
    owner: str
    owner_email: str
    member_email: str
    first: str  # cluster names
    second: str
    first_id: str


def _email(user_id: str) -> str:
    return f"{user_id[6:]}@example.com"


@pytest.fixture
def world(env: str) -> World:
    db = Database(env)
    try:
        with db.transaction() as s:
            box = SecretBox([DEV_ENCRYPTION_KEY])
            first = factories.add_cluster(s, box, "eu-west-1", api_url=f"http://127.0.0.1:{free_port()}")
            factories.add_cluster(s, box, "us-east-1")
            owner = factories.make_user(s, cluster=first.id)
            member = factories.make_user(s, owner=owner)
            factories.post(s, owner, "grant", "12.50")
    finally:
        db.dispose()
    return World(owner, _email(owner), _email(member), "eu-west-1", "us-east-1", str(first.id))


def _one(url: str, sql: str) -> object:
    engine = create_engine(url)
    with engine.begin() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


def test_credits_take_the_owners_email(env: str, world: World) -> None:
    r = runner.invoke(app, ["credits", "grant", world.owner_email.upper(), "5.00", "-r", "goodwill"])
    assert r.exit_code == 0 and "posted" in said(r), r.output
    r = runner.invoke(app, ["credits", "balance", world.owner_email])
    assert r.exit_code == 0, r.output
    assert f"{world.owner_email} ({world.owner}): 17.50 USD" in said(r)
    history = json.loads(runner.invoke(app, ["credits", "history", world.owner_email,
                                             "--json"]).output)
    assert [e["amount"] for e in history] == ["5.00", "12.50"]
    r = runner.invoke(app, ["credits", "verify", "--account", world.owner_email])
    assert r.exit_code == 0 and "2 entries in 1 accounts" in said(r), r.output
    r = runner.invoke(app, ["billing", "set-price", world.owner_email, "0.0002",
                            "--from", "2030-01-01", "-r", "contract"])
    assert r.exit_code == 0 and "0.000200 USD per compute unit from 2030-01-01" in said(r), r.output


def test_a_members_email_reads_the_owners_account_and_changes_nothing(
    env: str, world: World
) -> None:
    r = runner.invoke(app, ["credits", "balance", world.member_email])
    assert r.exit_code == 0 and f"({world.owner}): 12.50 USD" in said(r), r.output
    assert "is a team member: showing the account of its owner" in said(r)
    for args in (["credits", "grant", world.member_email, "5", "-r", "x"],
                 ["clusters", "assign", world.member_email, world.second],
                 ["billing", "set-price", world.member_email, "0.1", "--from", "2030-01-01",
                  "-r", "x"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and f"give {world.owner_email} instead" in said(r), r.output
        assert "Traceback" not in said(r)
    assert _one(env, "SELECT count(*) FROM credits_ledger") == 1


def test_an_unknown_email_says_what_exists(env: str, world: World) -> None:
    r = runner.invoke(app, ["credits", "grant", "nobody@example.com", "5", "-r", "x"])
    assert r.exit_code == 1 and "no account 'nobody@example.com'" in said(r), r.output
    assert "signing in once" in said(r)


def test_clusters_are_named_by_name_or_id(env: str, world: World) -> None:
    r = runner.invoke(app, ["clusters", "drain", "EU-West-1"])  # names ignore case
    assert r.exit_code == 0, r.output
    assert _one(env, "SELECT status FROM hopsworks_clusters WHERE name = 'eu-west-1'") == "draining"
    assert runner.invoke(app, ["clusters", "activate", world.first_id]).exit_code == 0
    r = runner.invoke(app, ["clusters", "update", world.second, "--max-users", "20"])
    assert r.exit_code == 0, r.output
    assert _one(env, "SELECT max_users FROM hopsworks_clusters WHERE name = 'us-east-1'") == 20
    r = runner.invoke(app, ["usage", "issue-token", world.second])
    assert r.exit_code == 0 and r.output.strip().startswith("hpu_"), r.output
    r = runner.invoke(app, ["clusters", "check", "nowhere-1"])
    assert r.exit_code == 1 and "no cluster named 'nowhere-1'" in said(r), r.output
    assert "clusters list" in said(r) and "UUID" not in said(r)


def test_assign_by_name_and_to_the_current_cluster(env: str, world: World) -> None:
    r = runner.invoke(app, ["clusters", "assign", world.owner_email, world.first, "--by", "ops|jane"])
    assert r.exit_code == 0, r.output
    assert "automatic" not in said(r)
    assert f"stays on cluster {world.first}" in said(r) and "assigned by ops|jane" in said(r)
    assert _one(env, "SELECT assigned_by FROM account_clusters") == "ops|jane"
    r = runner.invoke(app, ["clusters", "assign", world.owner_email])
    assert r.exit_code == 0 and "already on cluster eu-west-1" in said(r), r.output
    assert "nothing changed" in said(r) and "assigned by ops|jane" in said(r)
    r = runner.invoke(app, ["clusters", "assign", world.owner, world.second])
    assert r.exit_code == 0, r.output
    assert f"→ cluster {world.second}" in said(r) and "assigned by cli:" in said(r)
    assert f"moved from cluster {world.first_id}" in said(r)
    assert _one(env, "SELECT c.name FROM account_clusters a JOIN hopsworks_clusters c "
                     "ON c.id = a.hopsworks_cluster_id") == world.second


def test_clusters_check_says_each_failure_once(env: str, world: World) -> None:
    r = runner.invoke(app, ["clusters", "check", world.first])  # nothing listens there
    assert r.exit_code == 1, r.output
    assert r.output.count("did not answer") == 1, r.output
    assert "unreachable" not in said(r)  # the client's log line of the same failure
    assert "keys are not checked until the cluster answers" in said(r)


def test_worker_status_shows_an_error_whole(env: str) -> None:
    error = "provisioning failed: " + " ".join(f"word{i}" for i in range(40)) + " END"
    _one(env, "INSERT INTO hopsplane.jobs (task, status, last_error, finished_at) VALUES "
              f"('clusters.reconcile', 'failed', '{error}', now()) RETURNING id")
    r = runner.invoke(app, ["worker", "status"], env={"COLUMNS": "80"})
    assert r.exit_code == 0 and error in r.output, r.output  # piped: one line per row
    rows = json.loads(runner.invoke(app, ["worker", "status", "--json"]).output)
    assert [row["last_error"] for row in rows if row["last_error"]] == [error]


def test_db_check_compares_without_a_library_warning(env: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        migrate.check(env)
    assert [str(w.message) for w in caught] == []


def test_no_library_warning_reaches_the_operator(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def noisy(url: str) -> str:
        warnings.warn("a library talking to its developers", DeprecationWarning, stacklevel=1)
        return "0020"

    monkeypatch.setattr(migrate, "current", noisy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = runner.invoke(app, ["db", "current"])
    assert r.exit_code == 0, r.output
    assert not caught and "library talking" not in said(r)
    with warnings.catch_warnings(record=True) as caught:
        r = runner.invoke(app, ["--debug", "db", "current"])
    assert [str(w.message) for w in caught] == ["a library talking to its developers"]
