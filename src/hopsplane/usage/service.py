"""Use cases of usage metering. Functions take the session first and never commit
(except :func:`collect_all`, an edge for the worker that opens one transaction per cluster).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import structlog
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database
from hopsplane.errors import AppError, Forbidden, Invalid, NotFound
from hopsplane.integrations.prometheus import (
    PrometheusFactory,
    PrometheusQuery,
    build_prometheus_client,
)
from hopsplane.usage import attribution, rules
from hopsplane.usage import repository as repo
from hopsplane.usage.combiner import BatchCombiner
from hopsplane.usage.schemas import (
    CollectResult,
    IngestResult,
    NewEvent,
    RefoldResult,
    UnmatchedEventOut,
    UsageEventIn,
)

log = structlog.get_logger(__name__)

MAX_PAGE = 500
REFOLD_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who sends events: a platform admin (``cluster_id`` None) or a cluster's agent."""

    cluster_id: uuid.UUID | None = None
    admin_id: str | None = None
    max_age_days: int = rules.DEFAULT_MAX_AGE_DAYS  # HOPSPLANE_USAGE_MAX_AGE_DAYS

    @property
    def source(self) -> str:
        return rules.SOURCE_API if self.cluster_id is None else rules.agent_source(self.cluster_id)


def ingest(session: Session, events: Iterable[UsageEventIn], submitter: Submitter) -> IngestResult:
    """Store a batch of events and fold the new ones into usage_tracking.

    A repeated id (in the batch or from before) is ignored. Events whose account or
    project is not known (or, for a cluster agent, not assigned to its cluster) are kept
    as 'unmatched' and folded in by :func:`refold` once the mapping exists. The whole batch
    is refused (nothing stored) if one event is invalid.
    """
    rows = validated_batch(events, submitter)
    accepted, unmatched, days = repo.ingest(session, rows)
    return _result(len(rows), accepted, unmatched, days)


def ingest_grouped(
    combiner: BatchCombiner, events: Iterable[UsageEventIn], submitter: Submitter
) -> IngestResult:
    """:func:`ingest` through the process's group commit (the API): the batch is stored and
    folded, committed, together with the batches that arrived with it."""
    rows = validated_batch(events, submitter)
    accepted, unmatched, days = combiner.ingest(rows)
    return _result(len(rows), accepted, unmatched, days)


def validated_batch(events: Iterable[UsageEventIn], submitter: Submitter) -> list[NewEvent]:
    """The rows to store for a batch, or Invalid/Forbidden naming the first bad event."""
    source = submitter.source
    today = datetime.now(UTC).date()
    rows = [_validated(e, submitter, source, i, today) for i, e in enumerate(events)]
    if not rows:
        raise Invalid("a batch needs at least one event")
    if len(rows) > rules.MAX_BATCH:
        raise Invalid(f"at most {rules.MAX_BATCH} events per batch, got {len(rows)}")
    return rows


def _result(received: int, accepted: int, unmatched: int, days: int) -> IngestResult:
    return IngestResult(
        received=received, accepted=accepted, duplicates=received - accepted,
        unmatched=unmatched, days_updated=days,
    )


def _validated(event: UsageEventIn, submitter: Submitter, source: str, index: int,
               today: date) -> NewEvent:
    try:
        event_id = rules.check_event_id(event.id)
        if (event.account_id is None) == (event.project_id is None):
            raise Invalid("give exactly one of account_id and project_id")
        cluster_id = event.cluster_id
        if submitter.cluster_id is not None:
            if cluster_id is not None and cluster_id != submitter.cluster_id:
                raise Forbidden(
                    f"a cluster agent may only report usage of its own cluster "
                    f"({submitter.cluster_id}), not {cluster_id}"
                )
            cluster_id = submitter.cluster_id
        units, cpu_seconds = rules.event_units(event.compute_units, event.cpu_seconds)
        occurred_at = rules.utc_timestamp(event.timestamp)
        rules.check_usage_day(occurred_at.date(), today, submitter.max_age_days)
    except AppError as exc:
        exc.message = f"events[{index}] ({event.id!r}): {exc.message}"
        raise
    return NewEvent(
        event_id=event_id, source=source, cluster_id=cluster_id,
        account_id=event.account_id, project_id=event.project_id, namespace=None,
        user_id=event.user_id, occurred_at=occurred_at, compute_units=units,
        cpu_seconds=cpu_seconds,
    )


def refold(session: Session) -> RefoldResult:
    """Fold in every unmatched event whose account can now be resolved."""
    folded = 0
    while True:
        done = repo.refold_unmatched(session, limit=REFOLD_CHUNK)
        folded += done
        if done < REFOLD_CHUNK:
            break
    return RefoldResult(folded=folded, still_unmatched=repo.count_unmatched(session))


def unmatched(
    session: Session, *, limit: int = 50, after: str | None = None
) -> list[UnmatchedEventOut]:
    """Unmatched events by (source, id); ``after`` is :func:`rules.unmatched_cursor` of
    the last event of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
    position = None if after is None else rules.parse_unmatched_cursor(after)
    return [
        UnmatchedEventOut.model_validate(e)
        for e in repo.list_unmatched(session, limit=limit, after=position)
    ]


# --- ingestion tokens -----------------------------------------------------------------------

def issue_token(session: Session, cluster_id: uuid.UUID) -> str:
    """A new ingestion token for a cluster's agent; it replaces the previous one. Only its
    SHA-256 is stored: the caller shows the token once."""
    if repo.cluster_metadata(session, cluster_id) is None:
        raise NotFound(f"no cluster {cluster_id}")
    token = rules.TOKEN_PREFIX + secrets.token_urlsafe(32)
    repo.save_token(session, cluster_id, rules.token_hash(token))
    return token


def cluster_for_token(session: Session, token: str) -> uuid.UUID | None:
    """The cluster whose agent holds ``token`` (None: no such token). A disabled cluster's
    agent is refused (Forbidden) while it stays disabled; activating it restores the token."""
    found = repo.cluster_of_token(session, rules.token_hash(token))
    if found is None:
        return None
    cluster_id, status = found
    if status == "disabled":
        raise Forbidden(f"cluster {cluster_id} is disabled: its agent may not report usage")
    return cluster_id


# --- the Prometheus collector ---------------------------------------------------------------

def collect_cluster_day(
    session: Session, cluster_id: uuid.UUID, day: date, prometheus: PrometheusQuery,
    *, now: datetime | None = None, max_age_days: int = rules.DEFAULT_MAX_AGE_DAYS,
) -> CollectResult:
    """Collect one cluster's CPU core-seconds per namespace and Hopsworks user for one UTC
    day (:mod:`hopsplane.usage.attribution`): a day that has ended whole, today so far
    (00:00 UTC to ``now``, default the current time; :func:`rules.collection_window`).
    Today's collections and the day's final one write the same events, so each replaces
    the previous value: the day always holds its latest collection.

    A user's share of a namespace becomes the event
    ``prom:<cluster>:<namespace>:<day>:user:<user id>`` (source ``prometheus:<cluster>``);
    what no user could be found for, ``prom:<cluster>:<namespace>:<day>`` (source
    ``prometheus:<cluster>:unattributed``), billed to the account owner. Collecting again
    changes nothing when Prometheus says the same; when it says something else, the stored
    value is replaced (revision + 1) and the difference is folded in, so the day always
    holds the latest collection. An event that disappeared from a non-empty answer is
    replaced by zero; an empty answer changes nothing (Prometheus may have lost its data).
    """
    rules.check_usage_day(day, datetime.now(UTC).date(), max_age_days)
    metadata = repo.cluster_metadata(session, cluster_id)
    if metadata is None:
        raise NotFound(f"no cluster {cluster_id}")
    at, window = rules.collection_window(day, now or datetime.now(UTC))
    result = CollectResult(cluster_id=cluster_id, day=day, through=at)
    if window == 0:
        return result
    repo.lock_collection(session, cluster_id, day)
    ignored = rules.ignored_namespaces(metadata)
    cpu_by_pod: list[tuple[str, str, Decimal]] = []
    skipped: set[str] = set()
    for sample in prometheus.query(attribution.cpu_by_pod_query(window), at):
        namespace = sample.labels.get("namespace")
        if not namespace:
            continue
        if namespace in ignored:
            skipped.add(namespace)
            continue
        if not sample.value.is_finite() or sample.value < 0:
            raise Invalid(f"Prometheus gave {sample.value} CPU seconds for {namespace}")
        cpu_by_pod.append((namespace, sample.labels.get("pod", ""), sample.value))
    result.ignored = sorted(skipped)
    if not cpu_by_pod:
        return result
    pod_labels = {
        (s.labels.get("namespace", ""), s.labels.get("pod", "")): s.labels
        for s in prometheus.query(attribution.pod_labels_query(window), at)
    }
    split = attribution.split_by_user(
        cpu_by_pod, pod_labels, repo.hopsworks_users_by_namespace(session, cluster_id)
    )
    result.namespaces = len(split)
    result.cpu_seconds = sum((cpu for _ns, _pod, cpu in cpu_by_pod), Decimal(0))

    source = rules.prometheus_source(cluster_id)
    unattributed = attribution.unattributed_source(cluster_id)
    wanted: dict[str, tuple[str, str, str | None, Decimal]] = {}
    for namespace, per_user in sorted(split.items()):
        for user_id, cpu in per_user.items():
            if user_id is None:
                event = rules.collected_event_id(cluster_id, namespace, day)
                wanted[event] = (unattributed, namespace, None, cpu)
            else:
                event = attribution.user_event_id(cluster_id, namespace, day, user_id)
                wanted[event] = (source, namespace, user_id, cpu)
    # Event ids are unique per source (revision 0013): keep each stored event's source
    # so that a correction is applied to the row of that source.
    stored = {e.event_id: (src, e) for src in (source, unattributed)
              for e in repo.collected_events(session, src, day)}
    fresh: list[NewEvent] = []
    corrections: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    for event_id, (event_source, namespace, user_id, cpu) in sorted(wanted.items()):
        units = rules.units_from_cpu_seconds(cpu)
        found = stored.get(event_id)
        if found is None:
            fresh.append(NewEvent(
                event_id=event_id, source=event_source, cluster_id=cluster_id,
                account_id=None, project_id=None, namespace=namespace, user_id=user_id,
                occurred_at=rules.day_start(day), compute_units=units, cpu_seconds=cpu,
            ))
        elif found[1].cpu_seconds != cpu:
            corrections.setdefault(found[0], []).append((event_id, cpu, units))
        else:
            result.unchanged += 1
    for event_id, (stored_source, before) in stored.items():
        if event_id not in wanted and before.cpu_seconds != 0:
            corrections.setdefault(stored_source, []).append((event_id, Decimal(0), Decimal(0)))
    if fresh:
        accepted, result.unmatched, _days = repo.ingest(session, fresh)
        result.new = accepted
    result.corrected = sum(
        repo.correct_collected(session, rows, source=src)
        for src, rows in sorted(corrections.items())
    )
    changed = [e.event_id for e in fresh] + [
        event_id for rows in corrections.values() for event_id, _cpu, _units in rows]
    result.accounts = repo.accounts_of_events(session, (source, unattributed), changed)
    log.info("usage collected", cluster=str(cluster_id), day=day.isoformat(),
             through=at.isoformat(), namespaces=result.namespaces, new=result.new,
             corrected=result.corrected, unmatched=result.unmatched,
             accounts=len(result.accounts))
    return result


NO_PROMETHEUS = "no metadata.prometheus_url"
UsageChanged = Callable[[Session, list[str], date], None]
"""Told, inside a collection's transaction, which accounts' usage of a day it changed: the
composition root hands billing's "charge these accounts now" here, so the balance follows
the usage within the same minute instead of at the next billing slot."""


def _plain_prometheus(cluster_id: uuid.UUID, url: str) -> PrometheusQuery:
    return build_prometheus_client(url)


def prometheus_url(session: Session, cluster_id: uuid.UUID) -> str:
    """The cluster's Prometheus base URL (``hopsworks_clusters.metadata['prometheus_url']``)."""
    metadata = repo.cluster_metadata(session, cluster_id)
    if metadata is None:
        raise NotFound(f"no cluster {cluster_id}")
    url = metadata.get("prometheus_url")
    if not isinstance(url, str) or not url:
        raise Invalid(f"cluster {cluster_id} has no metadata.prometheus_url")
    return url


def collect_all(
    database: Database, day: date, *, prometheus_for: PrometheusFactory | None = None,
    now: datetime | None = None, on_change: UsageChanged | None = None,
    max_age_days: int = rules.DEFAULT_MAX_AGE_DAYS,
) -> list[CollectResult]:
    """Collect ``day`` (whole once it has ended, else so far up to ``now``) on every
    cluster that is not disabled and has a ``metadata['prometheus_url']``, one transaction
    per cluster (a failing cluster is reported in its result and does not stop the others),
    then refold the unmatched. ``on_change`` hears, in each cluster's transaction, of the
    accounts whose usage changed."""
    factory = prometheus_for or _plain_prometheus
    with database.transaction() as session:
        clusters = repo.clusters_to_collect(session)
    results: list[CollectResult] = []
    for cluster_id, metadata in clusters:
        url = metadata.get("prometheus_url")
        if not isinstance(url, str) or not url:
            results.append(CollectResult(cluster_id, day, error=NO_PROMETHEUS))
            continue
        client = factory(cluster_id, url)
        try:
            with database.transaction() as session:
                result = collect_cluster_day(session, cluster_id, day, client, now=now,
                                             max_age_days=max_age_days)
                if result.accounts and on_change is not None:
                    on_change(session, result.accounts, day)
                results.append(result)
        except AppError as exc:
            log.warning("usage collection failed", cluster=str(cluster_id), error=exc.message)
            results.append(CollectResult(cluster_id, day, error=exc.message))
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()
    with database.transaction() as session:
        refold(session)
    return results


def day_count(session: Session, account_id: str) -> int:
    """How many days of usage the account has recorded."""
    return repo.day_count(session, account_id)
