"""SQL of usage metering. The only module that reads or writes usage events, ingestion
tokens, and (for usage) usage_tracking.

Everything is set-based:

1. a batch is COPYed into a temporary table; ONE statement resolves every event to its
   account, inserts the new ones into ``hopsplane.usage_events`` (``ON CONFLICT DO
   NOTHING``: a repeated id is ignored) and stages their sums per (account, day, user,
   source) in the temporary table ``usage_fold``. Concurrent batches do this side by side.
2. :func:`_fold`, one transaction at a time (a transaction-scoped advisory lock, held to
   commit), inserts the missing (account, day) rows of usage_tracking at zero, locks the
   touched rows in key order and rewrites each from its locked value plus the staged
   sums, merging the JSON objects with one aggregation over all rows (no per-row
   function). ``compute_units`` is the sum of the new breakdown, so the breakdown sums to
   it by construction.

Only the folding section is serialised, so concurrent batches never wait on each other's
usage_tracking row locks in a convoy, and never deadlock (events are inserted in id order,
outside the section; every usage_tracking row lock is taken inside it). Corrections (a
re-collected Prometheus day) stage negative amounts through the same path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, select, text
from sqlalchemy.orm import Session

from hopsplane.db.models import HopsworksCluster, UsageEvent, UsageIngestToken
from hopsplane.usage.schemas import NewEvent, StoredCollected

_INCOMING_COLUMNS = (
    "event_id, source, cluster_id, account_id, project_id, namespace, user_id, occurred_at, "
    "compute_units, cpu_seconds"
)

_PREPARE = (
    text(
        """
        CREATE TEMP TABLE IF NOT EXISTS usage_incoming (
          event_id text, source text, cluster_id uuid, account_id text, project_id integer,
          namespace text, user_id text, occurred_at timestamptz, compute_units numeric,
          cpu_seconds numeric
        ) ON COMMIT DELETE ROWS
        """
    ),
    text(
        """
        CREATE TEMP TABLE IF NOT EXISTS usage_fold (
          account_owner_id text, day date, attributed_user_id text, source text,
          units numeric, cpu numeric, n bigint
        ) ON COMMIT DELETE ROWS
        """
    ),
    text("DELETE FROM usage_incoming"),
    text("DELETE FROM usage_fold"),
    # The statements are cheap, but their estimated cost crosses jit_above_cost and
    # compiling them would take longer than running them.
    text("SET LOCAL jit = off"),
)


def _prepare(session: Session) -> None:
    for statement in _PREPARE:
        session.execute(statement)


# Stages the rows of a CTE named `counted` (account_owner_id, day, attributed_user_id,
# source, compute_units, cpu_seconds, n), summed per (account, day, user, source).
_STAGE = """
staged AS (
  INSERT INTO usage_fold (account_owner_id, day, attributed_user_id, source, units, cpu, n)
  SELECT account_owner_id, day, attributed_user_id, source, sum(compute_units),
         sum(cpu_seconds), sum(n)
  FROM counted GROUP BY 1, 2, 3, 4
  RETURNING 1
)
"""

_FOLD_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('usage-fold', 0))")

_ENSURE_DAYS = text(
    """
    INSERT INTO public.usage_tracking (account_owner_id, date)
    SELECT DISTINCT account_owner_id, day FROM usage_fold ORDER BY 1, 2
    ON CONFLICT (account_owner_id, date) DO NOTHING
    """
)


def _fold(session: Session) -> int:
    """Add what this transaction staged to usage_tracking; the number of days changed."""
    session.execute(_FOLD_LOCK)
    session.execute(_ENSURE_DAYS)
    # Reach the day rows through their indexes: the rows are rewritten by every fold, and
    # until autovacuum catches up a sequential scan would read every dead version too.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    result = session.execute(_APPLY_FOLD)
    session.execute(text("SET LOCAL enable_seqscan = on"))
    session.execute(text("DELETE FROM usage_fold"))
    return cast(CursorResult[Any], result).rowcount


_APPLY_FOLD = text(
    """
WITH f AS (
  SELECT * FROM usage_fold
), locked AS (
  SELECT t.id, t.account_owner_id, t.date, t.user_breakdown, t.raw_metrics
  FROM public.usage_tracking t
  WHERE (t.account_owner_id, t.date) IN (SELECT account_owner_id, day FROM f)
  ORDER BY t.account_owner_id, t.date
  FOR UPDATE
), entries AS (
  SELECT l.id, 'b' AS part, e.key, e.value::numeric AS v
  FROM locked l, jsonb_each_text(l.user_breakdown) e
  UNION ALL
  SELECT l.id, 'u', e.key, e.value::numeric
  FROM locked l, jsonb_each_text(COALESCE(l.raw_metrics -> 'units_by_source', '{}')) e
  UNION ALL
  SELECT l.id, 'c', e.key, e.value::numeric
  FROM locked l, jsonb_each_text(COALESCE(l.raw_metrics -> 'cpu_seconds_by_source', '{}')) e
  UNION ALL
  SELECT l.id, 'n', e.key, e.value::numeric
  FROM locked l, jsonb_each_text(COALESCE(l.raw_metrics -> 'events_by_source', '{}')) e
  UNION ALL
  SELECT l.id, x.part, x.key, x.v
  FROM f JOIN locked l ON l.account_owner_id = f.account_owner_id AND l.date = f.day
  CROSS JOIN LATERAL (VALUES ('b', f.attributed_user_id, f.units), ('u', f.source, f.units),
                             ('c', f.source, f.cpu), ('n', f.source, f.n)) AS x(part, key, v)
  WHERE x.v IS NOT NULL
), summed AS (
  SELECT id, part, key, sum(v) AS v FROM entries GROUP BY 1, 2, 3 HAVING sum(v) <> 0
), merged AS (
  SELECT l.id, l.raw_metrics,
         COALESCE(sum(s.v) FILTER (WHERE s.part = 'b'), 0) AS units,
         COALESCE(jsonb_object_agg(s.key, s.v) FILTER (WHERE s.part = 'b'), '{}') AS breakdown,
         COALESCE(jsonb_object_agg(s.key, s.v) FILTER (WHERE s.part = 'u'), '{}') AS u,
         COALESCE(jsonb_object_agg(s.key, s.v) FILTER (WHERE s.part = 'c'), '{}') AS c,
         COALESCE(jsonb_object_agg(s.key, s.v) FILTER (WHERE s.part = 'n'), '{}') AS n
  FROM locked l LEFT JOIN summed s ON s.id = l.id
  GROUP BY l.id, l.raw_metrics
)
UPDATE public.usage_tracking t
SET compute_units = m.units, user_breakdown = m.breakdown,
    raw_metrics = m.raw_metrics || jsonb_build_object(
      'units_by_source', m.u, 'cpu_seconds_by_source', m.c, 'events_by_source', m.n),
    updated_at = now()
FROM merged m
WHERE t.id = m.id
"""
)


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

# Resolves the events of the CTE `ev` (event_id, account_id, project_id, namespace,
# cluster_id, user_id, ...) set-based: `resolved` has every column of `ev` plus owner_id,
# candidates (how many accounts the event names), attributed (the user it is billed to)
# and user_ok. An event names an account by a user id (owner, or member: billed to the
# owner), a Hopsworks project id (users.hopsworks_project_id) or, for collected events,
# a namespace (the owner's metadata.hopsworks_project_name, lowercased, '_' -> '-'). An
# event with a cluster only matches accounts assigned to that cluster.
_RESOLVE = """
cand AS (
  SELECT e.event_id, COALESCE(u.account_owner_id, u.id) AS owner_id,
         CASE WHEN u.account_owner_id IS NOT NULL THEN u.id END AS member_id
  FROM ev e JOIN public.users u ON u.id = e.account_id
  UNION ALL
  SELECT e.event_id, COALESCE(u.account_owner_id, u.id), NULL
  FROM ev e JOIN public.users u ON u.hopsworks_project_id = e.project_id
  UNION ALL
  SELECT e.event_id, u.id, NULL
  FROM ev e JOIN public.users u
    ON u.account_owner_id IS NULL
   AND replace(lower(u.metadata ->> 'hopsworks_project_name'), '_', '-') = e.namespace
), res AS (
  SELECT c.event_id, min(c.owner_id) AS owner_id, min(c.member_id) AS member_id,
         count(DISTINCT c.owner_id) AS candidates
  FROM cand c JOIN ev e USING (event_id)
  WHERE e.cluster_id IS NULL OR EXISTS (
    SELECT 1 FROM public.account_clusters ac
    WHERE ac.account_owner_id = c.owner_id AND ac.hopsworks_cluster_id = e.cluster_id)
  GROUP BY c.event_id
), resolved AS (
  SELECT e.*, r.owner_id, COALESCE(r.candidates, 0) AS candidates,
         COALESCE(e.user_id, r.member_id, r.owner_id) AS attributed,
         (e.user_id IS NULL OR EXISTS (
            SELECT 1 FROM public.users u
            WHERE u.id = e.user_id AND COALESCE(u.account_owner_id, u.id) = r.owner_id)
         ) AS user_ok
  FROM ev e LEFT JOIN res r USING (event_id)
), checked AS (
  SELECT r.*, """ + _PROBLEM + """ AS problem FROM resolved r
)"""

_INGEST = text(
    f"""
WITH ev AS (
  SELECT DISTINCT ON (event_id) * FROM usage_incoming ORDER BY event_id
), {_RESOLVE}, ins AS (
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
), {_STAGE}
SELECT (SELECT count(*) FROM ins) AS accepted,
       (SELECT count(*) FROM ins WHERE status = 'unmatched') AS unmatched,
       (SELECT count(*) FROM staged) AS staged
"""
)


def ingest(session: Session, events: Sequence[NewEvent]) -> tuple[int, int, int]:
    """Store new events and fold them in: (accepted, unmatched, days changed)."""
    _prepare(session)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY usage_incoming ({_INCOMING_COLUMNS}) FROM STDIN"
    ) as copy:
        for event in events:
            copy.write_row(event.row())
    session.execute(text("ANALYZE usage_incoming"))  # row estimates for the plan below
    row = session.execute(_INGEST).one()
    session.execute(text("DELETE FROM usage_incoming"))
    days = _fold(session) if row.staged else 0
    return int(row.accepted), int(row.unmatched), days


_REFOLD = text(
    f"""
WITH ev AS (
  SELECT event_id, account_id, project_id, namespace, cluster_id, user_id
  FROM hopsplane.usage_events
  WHERE status = 'unmatched' ORDER BY event_id LIMIT :limit
), {_RESOLVE}, upd AS (
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
), {_STAGE}
SELECT (SELECT count(*) FROM upd) AS folded
"""
)


def refold_unmatched(session: Session, *, limit: int) -> int:
    """Fold in the unmatched events (up to ``limit``) whose account is now known."""
    _prepare(session)
    folded = int(session.execute(_REFOLD, {"limit": limit}).scalar_one())
    if folded:
        _fold(session)
    return folded


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
), {_STAGE}
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
    _prepare(session)
    corrected = int(session.execute(
        _CORRECT, {"ids": list(ids), "cpu": list(cpu), "units": list(units)}
    ).scalar_one())
    _fold(session)
    return corrected


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
