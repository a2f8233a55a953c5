"""hopsplane audit: the audit log, newest first (every account, or one)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Annotated

import typer

from hopsplane.audit import service as audit
from hopsplane.cli import lookup
from hopsplane.cli.common import Col, JsonOpt, load_settings, print_list, transaction


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(
                "write a day (2026-12-01) or a time (2026-12-01T08:00:00+00:00)") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime.combine(day, time.min, tzinfo=UTC)


def _json(value: object) -> str:
    return "—" if value is None else json.dumps(value, sort_keys=True)


_COLUMNS = (
    Col("id", lambda e: e.id, whole=True),
    Col("when (UTC)", lambda e: e.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
    Col("actor", lambda e: f"{e.actor_kind}:{e.actor_id}", whole=True),
    Col("action", lambda e: e.action, whole=True),
    Col("account", lambda e: e.account_owner_id or "—", whole=True),
    Col("target", lambda e: e.target or "—"),
    Col("before", lambda e: _json(e.before)),
    Col("after", lambda e: _json(e.after)),
    Col("from", lambda e: e.source),
)


def audit_command(
    account: Annotated[str | None, typer.Option(
        "--account", help="Only this account: its owner's email or user id.")] = None,
    action: Annotated[str | None, typer.Option(
        help="An action (credits.grant), or a prefix ending in a dot (teams.).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Entries from this day (YYYY-MM-DD, UTC) or time (ISO 8601) on.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who decided what (roles, invites, budgets, auto top-up, grants, refunds, prices,
    suspensions, clusters, API keys, admin rights), before and after, newest first."""
    after = _since(since)
    with transaction(load_settings()) as session:
        account_id = lookup.account(session, account, for_change=False).id if account else None
        found = audit.entries(session, account_id=account_id, action=action, since=after,
                              limit=limit)
    print_list(found, _COLUMNS, as_json=as_json,
               json_rows=[e.model_dump(mode="json") for e in found])
