"""Amounts with a leading minus. No CLI command takes an amount that may be
negative: grants, refunds and unit prices are positive by the ledger's and billing's rules
(credit is taken away only by usage and refunds). So `-5`, typed as is or after `--`, is
read as the amount (not as an unknown option) and refused with the rule; options take
`--option=-5` and refuse it with their range (exit 2, nothing changed)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hopsplane.cli.main import app
from hopsplane.db.engine import Database
from tests import factories

runner = CliRunner()


def _owner_with_purchase(url: str) -> tuple[str, str]:
    db = Database(url)
    try:
        with db.transaction() as s:
            owner = factories.make_user(s)
            purchase = factories.post(s, owner, "purchase", "20.00").entry.id
        return owner, str(purchase)
    finally:
        db.dispose()


def _ledger_and_prices(url: str, owner: str) -> tuple[int, int]:
    db = Database(url)
    try:
        with db.transaction() as s:
            entries = s.execute(text("SELECT count(*) FROM credits_ledger "
                                     "WHERE account_owner_id = :a"), {"a": owner}).scalar_one()
            prices = s.execute(text("SELECT count(*) FROM hopsplane.price_overrides "
                                    "WHERE account_owner_id = :a"), {"a": owner}).scalar_one()
        return int(entries), int(prices)
    finally:
        db.dispose()


@pytest.mark.parametrize("how", ["bare", "after --"])
def test_a_negative_amount_is_read_as_the_amount_and_refused(env: str, how: str) -> None:
    owner, purchase = _owner_with_purchase(env)

    def args(head: list[str], value: str, tail: list[str]) -> list[str]:
        return [*head, value, *tail] if how == "bare" else [*head, *tail, "--", value]

    commands = [
        (args(["credits", "grant", owner], "-5", ["--reason", "x"]), "must be positive"),
        (args(["credits", "refund", owner, purchase], "-5", ["--reason", "x"]),
         "a refund's amount is what goes back"),
        (args(["billing", "set-price", owner], "-0.1", ["--from", "2026-11-01", "-r", "x"]),
         "unit_price must be between 0"),
    ]
    for command, why in commands:
        r = runner.invoke(app, command)
        assert r.exit_code == 1, (command, r.output)
        assert why in r.output and "No such option" not in r.output, (command, r.output)
        assert "Traceback" not in r.output
    assert _ledger_and_prices(env, owner) == (1, 0)
    ok = runner.invoke(app, ["credits", "grant", owner, "5", "--reason", "x"])
    assert ok.exit_code == 0, ok.output  # and a positive amount still works
    assert _ledger_and_prices(env, owner) == (2, 0)


@pytest.mark.parametrize("command", [
    ["billing", "run", "--batch-size=-3"],
    ["credits", "history", "someone", "--limit=-5"],
    ["usage", "unmatched", "--limit=-5"],
    ["worker", "--concurrency=-1", "--once"],
])
def test_an_option_takes_a_negative_value_with_equals_and_refuses_it_by_its_range(
    command: list[str],
) -> None:
    r = runner.invoke(app, command)
    assert r.exit_code == 2, r.output
    assert "Invalid value" in r.output and "-" in r.output and "Traceback" not in r.output


def test_the_help_says_how_a_negative_amount_is_read() -> None:
    for command in (["credits", "grant"], ["credits", "refund"], ["billing", "set-price"]):
        out = " ".join(runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
                       .output.split())
        assert "leading minus" in out, (command, out)
