"""hopsplane usage: ingestion tokens, Prometheus collection, unmatched events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from hopsplane.billing.tasks import enqueue_account_billing
from hopsplane.cli import lookup
from hopsplane.cli.common import (
    Col,
    JsonOpt,
    console,
    database,
    fail,
    friendly,
    load_settings,
    print_list,
    transaction,
)
from hopsplane.composition.jobs import prometheus_factory
from hopsplane.crypto import SecretBox
from hopsplane.usage import service
from hopsplane.usage.schemas import CollectResult

app = typer.Typer(
    help="Usage metering: compute units per account and UTC day, from usage events "
    "(POST /v1/usage/events) and from each cluster's Prometheus.",
    no_args_is_help=True,
)


@app.command("issue-token")
@friendly
def issue_token(
    cluster: lookup.ClusterArg,
) -> None:
    """Print a new ingestion token for CLUSTER's usage agent, once. It replaces the
    cluster's previous token; only its SHA-256 is stored. The agent sends it as
    `Authorization: Bearer <token>` to POST /v1/usage/events."""
    with transaction(load_settings()) as session:
        token = service.issue_token(session, lookup.cluster(session, cluster).id)
    console.print(token, soft_wrap=True)


@app.command()
@friendly
def collect(
    day: Annotated[
        str | None, typer.Option(help="UTC day, YYYY-MM-DD (default: yesterday, UTC).")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(
            help="Only this cluster, by name or id (default: every cluster not disabled).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask each cluster's Prometheus (metadata.prometheus_url) for the CPU core-seconds of
    every namespace on DAY (today: so far) and fold them in, and queue the billing of the
    accounts whose usage changed (a running `hopsplane worker` charges them). Safe to
    repeat: the same answer changes nothing, a different one replaces the day's collected
    usage. The worker does this by itself every few minutes for today, and once for each
    day that ended."""
    try:
        when = date.fromisoformat(day) if day else datetime.now(UTC).date() - timedelta(days=1)
    except ValueError:
        fail(f"--day must be YYYY-MM-DD, got {day!r}")
        return
    settings = load_settings()
    box = SecretBox(settings.effective_encryption_keys)
    with database(settings) as db:
        if cluster is None:
            results = service.collect_all(
                db, when, prometheus_for=prometheus_factory(db, box),
                on_change=enqueue_account_billing,
                max_age_days=settings.usage_max_age_days)
        else:
            with db.transaction() as session:
                cluster_id = lookup.cluster(session, cluster).id
                url = service.prometheus_url(session, cluster_id)
            client = prometheus_factory(db, box)(cluster_id, url)
            with db.transaction() as session:
                results = [service.collect_cluster_day(
                    session, cluster_id, when, client,
                    max_age_days=settings.usage_max_age_days)]
                enqueue_account_billing(session, results[0].accounts, when)
    _show(results, as_json)
    if any(r.error for r in results):
        raise typer.Exit(1)


_COLLECTED = (
    Col("cluster", lambda r: r.cluster_id, whole=True),
    Col("day", lambda r: r.day.isoformat()),
    Col("namespaces", lambda r: r.namespaces, justify="right"),
    Col("cpu seconds", lambda r: r.cpu_seconds, justify="right"),
    Col("new", lambda r: r.new, justify="right"),
    Col("corrected", lambda r: r.corrected, justify="right"),
    Col("unchanged", lambda r: r.unchanged, justify="right"),
    Col("unmatched", lambda r: r.unmatched, justify="right"),
    Col("error", lambda r: r.error),
)


def _show(results: list[CollectResult], as_json: bool) -> None:
    print_list(results, _COLLECTED, as_json=as_json)


_UNMATCHED = (
    Col("source", lambda e: e.source, whole=True),
    Col("event id", lambda e: e.event_id, whole=True),
    Col("day", lambda e: e.day.isoformat()),
    Col("units", lambda e: e.compute_units, justify="right"),
    Col("problem", lambda e: e.problem),
)


@app.command()
@friendly
def unmatched(
    limit: Annotated[int, typer.Option(
        min=1, max=service.MAX_PAGE, help="How many, by source and event id.")] = 50,
    after: Annotated[str | None, typer.Option(
        help="Only events after this one: 'SOURCE ID', as the last row's first two columns "
        "(an id is unique within its source).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List events kept but not billed yet (unknown account, project or namespace)."""
    with transaction(load_settings()) as session:
        events = service.unmatched(session, limit=limit, after=after)
    print_list(events, _UNMATCHED, as_json=as_json)
    if not as_json:
        console.print(f"{len(events)} shown")


@app.command()
@friendly
def refold() -> None:
    """Fold in the unmatched events whose account is now known (after a project or
    cluster assignment was recorded). Safe to repeat."""
    with transaction(load_settings()) as session:
        result = service.refold(session)
    console.print(f"folded {result.folded} event(s); {result.still_unmatched} still unmatched")
