"""Every list command takes --json and never cuts an id: the JSON parses and
holds the whole ids; the table, piped at 80 columns (CliRunner is not a terminal), holds
them whole too. Stripe's reconcile and the legacy plan are checked beside their own
fixtures (tests/payments/test_reconcile.py, tests/legacy/test_cli.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.db.engine import Database
from hopsplane.usage import service as usage
from hopsplane.worker import service as worker
from tests import factories

runner = CliRunner()

LONG_EVENT = "event-" + "x" * 70  # longer than any column an 80-column table would give


def _seed(url: str) -> dict[str, Any]:
    db = Database(url)
    try:
        with db.transaction() as s:
            cluster = factories.make_cluster(s)
            other = factories.make_cluster(s)
            owner = factories.make_user(s, cluster=cluster, admin=True)
            stranger = factories.make_user(s, cluster=other)
            factories.post(s, owner, "grant", "12.50")
            factories.post(s, owner, "usage", "-2.25")
            # an agent reporting for an account of another cluster: kept, unmatched
            usage.ingest(s, [factories.event(LONG_EVENT, account_id=stranger)],
                         usage.Submitter(cluster_id=cluster))
            worker.enqueue(s, "worker.prune")
            entries = [str(e) for (e,) in s.execute(
                text("SELECT id FROM credits_ledger WHERE account_owner_id = :a"),
                {"a": owner})]
        return {"cluster": str(cluster), "other": str(other), "owner": owner,
                "entries": entries}
    finally:
        db.dispose()


def _lists(seeded: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    """(command, the whole ids its output must hold)."""
    return [
        (["clusters", "list"], [seeded["cluster"], seeded["other"]]),
        (["credits", "history", seeded["owner"]], seeded["entries"]),
        (["usage", "unmatched"], [LONG_EVENT, f"agent:{seeded['cluster']}"]),
        (["worker", "status"], ["worker.prune"]),
        (["admins", "list"], [seeded["owner"]]),
        (["accounts", "find", seeded["owner"]], [seeded["owner"], seeded["cluster"]]),
    ]


def test_every_list_command_keeps_whole_ids_piped_at_80_columns_and_takes_json(
    env: str,
) -> None:
    seeded = _seed(env)
    for command, ids in _lists(seeded):
        table = runner.invoke(app, command, env={"COLUMNS": "80"})
        assert table.exit_code == 0, (command, table.output)
        for whole in ids:
            assert whole in table.output, (command, whole, table.output)
        assert "…" not in table.output, (command, table.output)
        listed = runner.invoke(app, [*command, "--json"])
        assert listed.exit_code == 0, (command, listed.output)
        dumped = json.dumps(json.loads(listed.output))
        for whole in ids:
            assert f'"{whole}"' in dumped, (command, whole, dumped)


def test_json_keys_are_stable_and_amounts_are_exact_strings(env: str) -> None:
    seeded = _seed(env)
    history = json.loads(runner.invoke(
        app, ["credits", "history", seeded["owner"], "--json"]).output)
    assert [(e["amount"], e["balance"]) for e in history] == [
        ("-2.25", "10.25"), ("12.50", "12.50")]
    assert set(history[0]) == {"id", "account_owner_id", "seq", "type", "amount", "balance",
                               "description", "stripe_payment_intent_id", "refund_of",
                               "idempotency_key", "created_at", "expires_at", "refers_to",
                               "stripe_dispute_id"}
    [event] = json.loads(runner.invoke(app, ["usage", "unmatched", "--json"]).output)
    assert event["event_id"] == LONG_EVENT and event["compute_units"] == "1.0000"
    [admin] = json.loads(runner.invoke(app, ["admins", "list", "--json"]).output)
    assert admin["id"] == seeded["owner"] and admin["role"] == "admin"
    jobs = json.loads(runner.invoke(app, ["worker", "status", "--json"]).output)
    assert {"task": "worker.prune", "status": "queued", "count": 1} in [
        {k: j[k] for k in ("task", "status", "count")} for j in jobs]


@pytest.mark.parametrize("command", [
    ["clusters", "list"], ["credits", "history", "x"], ["usage", "unmatched"],
    ["usage", "collect"], ["worker", "status"], ["admins", "list"], ["accounts", "find", "x"],
    ["stripe", "reconcile"], ["legacy", "plan"],
])
def test_every_list_command_documents_json(command: list[str]) -> None:
    assert "--json" in runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output


def test_an_id_is_never_cut_even_when_the_table_is_wider_than_the_terminal() -> None:
    """The helper itself: a row far wider than 80 columns keeps its id whole."""
    from hopsplane.cli.common import Col, print_list

    whole = str(uuid.uuid4()) + "-" + "y" * 60
    rows = [{"id": whole, "text": "word " * 40}]
    columns = (Col("id", lambda r: r["id"], whole=True), Col("text", lambda r: r["text"]))
    result = runner.invoke(_typer_printing(lambda: print_list(rows, columns, as_json=False)),
                           [], env={"COLUMNS": "80"})
    assert whole in result.output, result.output


def _typer_printing(fn: Any) -> Any:
    import typer

    one = typer.Typer()
    one.command()(fn)
    return one
