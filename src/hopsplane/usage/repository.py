"""SQL of usage metering. The only module that reads or writes usage events, ingestion
tokens, and (for usage) usage_tracking.

Everything is set-based: a batch is COPYed into a temporary table, then ONE statement
resolves every event to its account (``hopsplane.usage_resolve``), inserts the new ones
into ``hopsplane.usage_events`` (``ON CONFLICT DO NOTHING``: a repeated id is ignored) and
adds them, grouped per (account, UTC day), to ``usage_tracking`` (``ON CONFLICT ... DO
UPDATE`` adding to the row). The add is what makes concurrent writers exact: the update
re-reads the newest row under its row lock. Rows are inserted in key order (events by id,
days by account and date), so two writers never wait for each other in a cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hopsplane.db.models import HopsworksCluster, UsageEvent, UsageIngestToken
from hopsplane.usage.schemas import NewEvent, StoredCollected

_INCOMING_COLUMNS = (
    "event_id, source, cluster_id, account_id, project_id, namespace, user_id, occurred_at, "
    "compute_units, cpu_seconds"
)

_CREATE_INCOMING = text(
    """
    CREATE TEMP TABLE IF NOT EXISTS usage_incoming (
      event_id text, source text, cluster_id uuid, account_id text, project_id integer,
      namespace text, user_id text, occurred_at timestamptz, compute_units numeric,
      cpu_seconds numeric
    ) ON COMMIT DELETE ROWS
    """
)

# Adds the rows of a CTE named `counted` (account_owner_id, day, attributed_user_id,
# source, compute_units, cpu_seconds, n) to usage_tracking, one row per (account, day).
_DAYS = """
days AS (
  SELECT d.account_owner_id, d.day, d.units, d.breakdown, s.raw
  FROM (SELECT account_owner_id, day, sum(units) AS units,
               jsonb_object_agg(attributed_user_id, units) AS breakdown
        FROM (SELECT account_owner_id, day, attributed_user_id, sum(compute_units) AS units
              FROM counted GROUP BY 1, 2, 3) AS per_user
        GROUP BY 1, 2) AS d
  JOIN (SELECT account_owner_id, day, jsonb_build_object(
               'units_by_source', jsonb_object_agg(source, units),
               'cpu_seconds_by_source',
                 COALESCE(jsonb_object_agg(source, cpu) FILTER (WHERE cpu IS NOT NULL),
                          '{}'::jsonb),
               'events_by_source', jsonb_object_agg(source, n)) AS raw
        FROM (SELECT account_owner_id, day, source, sum(compute_units) AS units,
                     sum(cpu_seconds) AS cpu, sum(n) AS n
              FROM counted GROUP BY 1, 2, 3) AS per_source
        GROUP BY 1, 2) AS s USING (account_owner_id, day)
)"""

# New usage: insert the day or add to it (the update re-reads the newest row under its lock).
_FOLD = _DAYS + """, folded AS (
  INSERT INTO public.usage_tracking AS t
      (account_owner_id, date, compute_units, user_breakdown, raw_metrics)
  SELECT account_owner_id, day, units, breakdown, raw FROM days
  ORDER BY 1, 2
  ON CONFLICT (account_owner_id, date) DO UPDATE SET
    compute_units = t.compute_units + EXCLUDED.compute_units,
    user_breakdown = hopsplane.jsonb_sum_merge(t.user_breakdown, EXCLUDED.user_breakdown),
    raw_metrics = hopsplane.usage_raw_merge(t.raw_metrics, EXCLUDED.raw_metrics),
    updated_at = now()
  RETURNING 1
)
"""

# Corrections (amounts may be negative) of days that exist: PostgreSQL checks an INSERT's
# proposed row before ON CONFLICT, so a negative difference must be an UPDATE. The rows are
# locked in key order first, like the insert above, so the two never deadlock.
_FOLD_CORRECTION = _DAYS + """, locked AS (
  SELECT t.id FROM public.usage_tracking t
  JOIN days ON t.account_owner_id = days.account_owner_id AND t.date = days.day
  ORDER BY t.account_owner_id, t.date
  FOR UPDATE OF t
), folded AS (
  UPDATE public.usage_tracking t SET
    compute_units = t.compute_units + days.units,
    user_breakdown = hopsplane.jsonb_sum_merge(t.user_breakdown, days.breakdown),
    raw_metrics = hopsplane.usage_raw_merge(t.raw_metrics, days.raw),
    updated_at = now()
  FROM days
  WHERE t.account_owner_id = days.account_owner_id AND t.date = days.day
    AND t.id IN (SELECT id FROM locked)
  RETURNING 1
)
"""

# Why an event cannot be attributed (NULL: it can). Columns of `r`: a resolved event.
_PROBLEM = """
CASE
  WHEN r.candidates = 0 THEN
    CASE WHEN r.account_id IS NOT NULL THEN 'unknown account ' || r.account_id
         WHEN r.project_id IS NOT NULL THEN 'unknown project ' || r.project_id
         ELSE 'unknown namespace ' || r.namespace END
    || CASE WHEN r.cluster_id IS NOT NULL THEN ' on cluster ' || r.cluster_id ELSE '' END
  WHEN r.candidates > 1 THEN
    COALESCE('project ' || r.project_id, 'namespace ' || r.namespace)
    || ' belongs to ' || r.candidates || ' accounts'
  WHEN NOT r.user_ok THEN 'user ' || r.user_id || ' is not in account ' || r.owner_id
END
"""

_RESOLVED = """
SELECT e.*, x.owner_id, x.candidates,
       COALESCE(e.user_id, x.member_id, x.owner_id) AS attributed,
       (e.user_id IS NULL OR EXISTS (
          SELECT 1 FROM public.users u
          WHERE u.id = e.user_id AND COALESCE(u.account_owner_id, u.id) = x.owner_id)) AS user_ok
FROM {events} e
CROSS JOIN LATERAL hopsplane.usage_resolve(e.account_id, e.project_id, e.namespace,
                                           e.cluster_id) AS x
"""

_INGEST = text(
    f"""
WITH incoming AS (
  SELECT DISTINCT ON (event_id) * FROM usage_incoming ORDER BY event_id
), resolved AS (
  {_RESOLVED.format(events="incoming")}
), checked AS (
  SELECT r.*, {_PROBLEM} AS problem FROM resolved r
), ins AS (
  INSERT INTO hopsplane.usage_events ({_INCOMING_COLUMNS}, status, problem,
                                      account_owner_id, attributed_user_id)
  SELECT {_INCOMING_COLUMNS},
         CASE WHEN problem IS NULL THEN 'folded' ELSE 'unmatched' END, problem,
         CASE WHEN problem IS NULL THEN owner_id END,
         CASE WHEN problem IS NULL THEN attributed END
  FROM checked ORDER BY event_id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING account_owner_id, day, attributed_user_id, source, compute_units, cpu_seconds,
            status
), counted AS (
  SELECT account_owner_id, day, attributed_user_id, source, compute_units, cpu_seconds,
         1 AS n
  FROM ins WHERE status = 'folded'
), {_FOLD}
SELECT (SELECT count(*) FROM ins) AS accepted,
       (SELECT count(*) FROM ins WHERE status = 'unmatched') AS unmatched,
       (SELECT count(*) FROM folded) AS days
"""
)


def ingest(session: Session, events: Sequence[NewEvent]) -> tuple[int, int, int]:
    """Store new events and fold them in: (accepted, unmatched, days updated)."""
    session.execute(_CREATE_INCOMING)
    session.execute(text("DELETE FROM usage_incoming"))
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY usage_incoming ({_INCOMING_COLUMNS}) FROM STDIN"
    ) as copy:
        for event in events:
            copy.write_row(event.row())
    row = session.execute(_INGEST).one()
    session.execute(text("DELETE FROM usage_incoming"))
    return int(row.accepted), int(row.unmatched), int(row.days)


_REFOLD = text(
    f"""
WITH resolved AS (
  {_RESOLVED.format(events="(SELECT * FROM hopsplane.usage_events "
                    "WHERE status = 'unmatched' ORDER BY event_id LIMIT :limit)")}
), checked AS (
  SELECT r.event_id, r.owner_id, r.attributed, {_PROBLEM} AS problem FROM resolved r
), upd AS (
  UPDATE hopsplane.usage_events e
  SET status = 'folded', problem = NULL, account_owner_id = c.owner_id,
      attributed_user_id = c.attributed, updated_at = now()
  FROM checked c
  WHERE e.event_id = c.event_id AND c.problem IS NULL AND e.status = 'unmatched'
  RETURNING e.account_owner_id, e.day, e.attributed_user_id, e.source, e.compute_units,
            e.cpu_seconds
), counted AS (
  SELECT account_owner_id, day, attributed_user_id, source, compute_units, cpu_seconds,
         1 AS n FROM upd
), {_FOLD}
SELECT (SELECT count(*) FROM upd) AS folded
"""
)


def refold_unmatched(session: Session, *, limit: int) -> int:
    """Fold in the unmatched events (up to ``limit``) whose account is now known."""
    return int(session.execute(_REFOLD, {"limit": limit}).scalar_one())


def count_unmatched(session: Session) -> int:
    return int(session.execute(
        text("SELECT count(*) FROM hopsplane.usage_events WHERE status = 'unmatched'")
    ).scalar_one())


def list_unmatched(session: Session, *, limit: int, after: str | None) -> list[UsageEvent]:
    stmt = select(UsageEvent).where(UsageEvent.status == "unmatched")
    if after is not None:
        stmt = stmt.where(UsageEvent.event_id > after)
    return list(session.scalars(stmt.order_by(UsageEvent.event_id).limit(limit)))


# --- collected (Prometheus) events ---------------------------------------------------------

def lock_collection(session: Session, cluster_id: uuid.UUID, day: date) -> None:
    """Serialise collections of one cluster and day (a second waits for the first)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"usage-collect:{cluster_id}:{day.isoformat()}"},
    )


def collected_events(session: Session, source: str, day: date) -> list[StoredCollected]:
    """The stored events of one collection, locked until the transaction ends."""
    rows = session.execute(
        text(
            "SELECT event_id, namespace, cpu_seconds, compute_units FROM hopsplane.usage_events "
            "WHERE source = :source AND day = :day AND namespace IS NOT NULL "
            "ORDER BY event_id FOR UPDATE"
        ),
        {"source": source, "day": day},
    )
    return [
        StoredCollected(r.event_id, r.namespace, Decimal(r.cpu_seconds or 0),
                        Decimal(r.compute_units))
        for r in rows
    ]


_CORRECT = text(
    f"""
WITH new AS (
  SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:cpu AS numeric[]),
                       CAST(:units AS numeric[]))
         AS n(event_id, cpu_seconds, compute_units)
), old AS (
  SELECT e.event_id, e.cpu_seconds, e.compute_units
  FROM hopsplane.usage_events e JOIN new USING (event_id)
), upd AS (
  UPDATE hopsplane.usage_events e
  SET cpu_seconds = new.cpu_seconds, compute_units = new.compute_units,
      revision = e.revision + 1, updated_at = now()
  FROM new WHERE e.event_id = new.event_id
  RETURNING e.event_id, e.status, e.account_owner_id, e.day, e.attributed_user_id, e.source
), counted AS (
  SELECT upd.account_owner_id, upd.day, upd.attributed_user_id, upd.source,
         new.compute_units - old.compute_units AS compute_units,
         new.cpu_seconds - COALESCE(old.cpu_seconds, 0) AS cpu_seconds, 0 AS n
  FROM upd JOIN new USING (event_id) JOIN old USING (event_id)
  WHERE upd.status = 'folded'
), {_FOLD_CORRECTION}
SELECT (SELECT count(*) FROM upd) AS corrected
"""
)


def correct_collected(
    session: Session, corrections: Sequence[tuple[str, Decimal, Decimal]]
) -> int:
    """Replace the values of stored collected events (locked by :func:`collected_events`
    in this transaction) and fold the difference in: (event_id, cpu_seconds, units)."""
    if not corrections:
        return 0
    ids, cpu, units = zip(*corrections, strict=True)
    return int(session.execute(
        _CORRECT, {"ids": list(ids), "cpu": list(cpu), "units": list(units)}
    ).scalar_one())


# --- clusters and tokens -----------------------------------------------------------------

def cluster(session: Session, cluster_id: uuid.UUID) -> HopsworksCluster | None:
    return session.get(HopsworksCluster, cluster_id)


def clusters_to_collect(session: Session) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Every cluster that is not disabled, with its metadata."""
    rows = session.execute(
        select(HopsworksCluster.id, HopsworksCluster.metadata_)
        .where(HopsworksCluster.status != "disabled").order_by(HopsworksCluster.name)
    )
    return [(r[0], dict(r[1] or {})) for r in rows]


def save_token(session: Session, cluster_id: uuid.UUID, digest: str) -> None:
    session.execute(
        text(
            "INSERT INTO hopsplane.usage_ingest_tokens (cluster_id, token_sha256) "
            "VALUES (:c, :d) ON CONFLICT (cluster_id) DO UPDATE "
            "SET token_sha256 = EXCLUDED.token_sha256, created_at = now()"
        ),
        {"c": cluster_id, "d": digest},
    )


def cluster_of_token(session: Session, digest: str) -> uuid.UUID | None:
    return session.scalars(
        select(UsageIngestToken.cluster_id).where(UsageIngestToken.token_sha256 == digest)
    ).one_or_none()
