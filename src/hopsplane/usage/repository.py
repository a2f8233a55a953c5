"""SQL of usage metering. The only module that reads or writes usage events, ingestion
tokens, and (for usage) usage_tracking.

Everything is set-based, and the part that is serialised is kept short:

1. side by side with other transactions: the batch (or the batches of a group, see
   :mod:`hopsplane.usage.combiner`) is COPYed into a temporary table and ONE statement
   resolves every event to its account (or says why it cannot) into a second temporary
   table, ``usage_ready`` (each id once: its first copy);
2. one transaction at a time (a transaction-scoped advisory lock, held to commit), in ONE
   round trip to the server (:func:`_script`): the new events are inserted into
   ``hopsplane.usage_events`` in id order (``ON CONFLICT DO NOTHING``: a repeated id is
   ignored), their sums per (account, day, user, source) staged in ``usage_fold``, the
   missing (account, day) rows of usage_tracking inserted at zero, and the staged sums
   added to the day rows by plain UPDATEs (:data:`_ROUNDS`), each adding one (user,
   source) sum per row, so a row changes at most once per statement and no JSON is taken
   apart: ``hopsplane.jsonb_add_number`` (revision 0008) is inlined into the UPDATE.
   ``compute_units`` and the user's breakdown entry get the same amount, so the breakdown
   keeps summing to the units (the CHECK verifies it).

Taking the lock before the events are inserted matters: two batches that share a new id
would otherwise have the second wait on the first's row in the unique index until the first
commits, and the batches queued behind it form a convoy holding index entries. Every writer
of usage_events rows (ingest, refold, corrections) takes the lock before writing them, so
nobody waits on an event row while holding what the lock holder needs: no deadlocks.
Corrections (a re-collected Prometheus day) stage negative amounts through the same path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import select, text, tuple_
from sqlalchemy.orm import Session

from hopsplane.db.models import UsageEvent
from hopsplane.errors import Invalid
from hopsplane.usage.rules import MAX_DAY_UNITS
from hopsplane.usage.schemas import NewEvent, StoredCollected

_INCOMING_COLUMNS = (
    "event_id, source, cluster_id, account_id, project_id, namespace, user_id, occurred_at, "
    "compute_units, cpu_seconds"
)

_READY_COLUMNS = f"{_INCOMING_COLUMNS}, status, problem, account_owner_id, attributed_user_id"

_PREPARE = """
CREATE TEMP TABLE IF NOT EXISTS usage_incoming (
  event_id text, source text, cluster_id uuid, account_id text, project_id integer,
  namespace text, user_id text, occurred_at timestamptz, compute_units numeric,
  cpu_seconds numeric, batch integer, seq integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS usage_ready (
  event_id text, source text, cluster_id uuid, account_id text, project_id integer,
  namespace text, user_id text, occurred_at timestamptz, compute_units numeric,
  cpu_seconds numeric, status text, problem text, account_owner_id text,
  attributed_user_id text, batch integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS usage_fold (
  account_owner_id text, day date, attributed_user_id text, source text,
  units numeric, cpu numeric, n bigint
) ON COMMIT DELETE ROWS;
DELETE FROM usage_incoming;
DELETE FROM usage_ready;
DELETE FROM usage_fold;
-- The statements are cheap, but their estimated cost crosses jit_above_cost and
-- compiling them would take longer than running them.
SET LOCAL jit = off
"""


def _script(session: Session, script: str) -> list[list[tuple[Any, ...]]]:
    """Run several statements (no parameters) in one round trip; the rows of each statement
    that returns rows, in order. Used for the serialised section, so that it does not wait
    for this process between its statements (in a busy server, a thread waits for the
    interpreter lock after every round trip)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    results: list[list[tuple[Any, ...]]] = []
    with raw.cursor() as cur:
        cur.execute(script.encode())
        while True:
            if cur.description is not None:
                results.append(cur.fetchall())
            if not cur.nextset():
                break
    return results


def _prepare(session: Session) -> None:
    _script(session, _PREPARE)


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

_FOLD_LOCK = (
    "DO $lock$ BEGIN PERFORM pg_advisory_xact_lock(hashtextextended('usage-fold', 0)); END $lock$"
)

_ENSURE_DAYS = """
INSERT INTO public.usage_tracking (account_owner_id, date)
SELECT DISTINCT f.account_owner_id, f.day FROM usage_fold f
WHERE NOT EXISTS (SELECT 1 FROM public.usage_tracking t
                  WHERE t.account_owner_id = f.account_owner_id AND t.date = f.day)
ORDER BY 1, 2
ON CONFLICT (account_owner_id, date) DO NOTHING
"""

# The fold proper: every (account, day) with at least `r` staged (user, source) sums gets
# its `r`-th one added, for r = 1, 2, ... until no row has one; so each UPDATE changes a row
# at most once and every change is a plain expression (hopsplane.jsonb_add_number is
# inlined): no JSON is taken apart and aggregated again. A batch from one submitter has one
# source, so most rows need one round, a member's usage a second. The breakdown entry and
# compute_units get the same amount, so the breakdown CHECK keeps holding. A DO block, so
# that the rounds run without a round trip each.
_ROUNDS = """
DO $fold$
DECLARE
  r integer := 1;
  changed integer;
BEGIN
  LOOP
    UPDATE public.usage_tracking t
    SET compute_units = t.compute_units + f.units,
        user_breakdown =
          hopsplane.jsonb_add_number(t.user_breakdown, f.attributed_user_id, f.units),
        raw_metrics = t.raw_metrics || jsonb_build_object(
          'units_by_source',
          hopsplane.jsonb_add_number(t.raw_metrics -> 'units_by_source', f.source, f.units),
          'cpu_seconds_by_source',
          hopsplane.jsonb_add_number(t.raw_metrics -> 'cpu_seconds_by_source', f.source,
                                     f.cpu),
          'events_by_source',
          hopsplane.jsonb_add_number(t.raw_metrics -> 'events_by_source', f.source, f.n)),
        updated_at = now()
    FROM (
      SELECT g.*, row_number() OVER (PARTITION BY account_owner_id, day
                                     ORDER BY attributed_user_id, source) AS round
      FROM (SELECT account_owner_id, day, attributed_user_id, source, sum(units) AS units,
                   sum(cpu) AS cpu, sum(n) AS n
            FROM usage_fold GROUP BY 1, 2, 3, 4) g
    ) f
    WHERE f.round = r AND t.account_owner_id = f.account_owner_id AND t.date = f.day;
    GET DIAGNOSTICS changed = ROW_COUNT;
    EXIT WHEN changed = 0;
    r := r + 1;
  END LOOP;
END
$fold$
"""

# Adds what this transaction staged to usage_tracking (under the lock, taken earlier in the
# transaction or here) and answers the number of days changed. The day rows
# are reached through their indexes: the rows are rewritten by every fold, and until
# autovacuum catches up a sequential scan would read every dead version too.
_FOLD = f"""
{_FOLD_LOCK};
SET LOCAL enable_seqscan = off;
{_ENSURE_DAYS};
{_ROUNDS};
SET LOCAL enable_seqscan = on;
SELECT count(*) FROM (SELECT DISTINCT account_owner_id, day FROM usage_fold) d;
DELETE FROM usage_fold
"""


def _fold(session: Session) -> int:
    """Add what this transaction staged to usage_tracking; the number of days changed."""
    return int(_script(session, _FOLD)[0][0][0])


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

# Resolves the events of the CTE `ev` (with the columns `ev_columns`: event_id,
# account_id, project_id, namespace, cluster_id, user_id, ...) set-based: `resolved` has
# those columns plus owner_id, candidates (how many accounts the event names), attributed
# (the user it is billed to) and user_ok. An event names an account by a user id (owner, or
# member: billed to the owner), a Hopsworks project id or, for collected events, a
# namespace (the owner's, as Hopsworks named it, or else its project name lowercased,
# '_' -> '-'). An event with a cluster only matches accounts assigned to that cluster.
# Who belongs to which account and the Hopsworks identities are other domains' rows, read
# through the views they publish (revision 0020): hopsplane.account_members (accounts),
# hopsplane.hopsworks_identities and hopsplane.cluster_assignments (clusters). A namespace
# of a project an account's user owns besides the account's (hopsplane.stray_project_
# namespaces, revision 0021) names that account too: its usage is billed to the owner.
# The candidates are grouped back onto the events by all of the events' columns, not
# joined back by id after grouping: the planner cannot estimate the grouped rows, and
# took a nested loop between the batch and itself (quadratic in the batch size).
def _resolve(ev_columns: str) -> str:
    grouped = ", ".join(f"e.{c.strip()}" for c in ev_columns.split(","))
    return f"""
cand AS (
  SELECT e.source, e.event_id, m.account_id AS owner_id,
         CASE WHEN NOT m.is_owner THEN m.user_id END AS member_id
  FROM ev e JOIN hopsplane.account_members m ON m.user_id = e.account_id
  UNION ALL
  SELECT e.source, e.event_id, h.account_id, NULL
  FROM ev e JOIN hopsplane.hopsworks_identities h ON h.project_id = e.project_id
  UNION ALL
  SELECT e.source, e.event_id, h.user_id, NULL
  FROM ev e JOIN hopsplane.hopsworks_identities h ON h.namespace = e.namespace
  UNION ALL
  SELECT e.source, e.event_id, st.account_id, NULL
  FROM ev e JOIN hopsplane.stray_project_namespaces st ON st.namespace = e.namespace
), res AS (
  SELECT {grouped}, min(c.owner_id) AS owner_id, min(c.member_id) AS member_id,
         count(DISTINCT c.owner_id) AS candidates
  FROM ev e LEFT JOIN cand c ON c.event_id = e.event_id AND c.source = e.source AND (
    e.cluster_id IS NULL OR EXISTS (
      SELECT 1 FROM hopsplane.cluster_assignments ac
      WHERE ac.account_id = c.owner_id AND ac.cluster_id = e.cluster_id))
  GROUP BY {grouped}
), resolved AS (
  SELECT r.*, COALESCE(r.user_id, r.member_id, r.owner_id) AS attributed,
         (r.user_id IS NULL OR EXISTS (
            SELECT 1 FROM hopsplane.account_members m
            WHERE m.user_id = r.user_id AND m.account_id = r.owner_id)
         ) AS user_ok
  FROM res r
), checked AS (
  SELECT r.*, {_PROBLEM} AS problem FROM resolved r
)"""

# Outside the lock: resolve the batches into usage_ready, each id once: its first copy (in
# the first batch that has it, the first in that batch).
_RESOLVE_BATCHES = text(
    f"""
WITH ev AS (
  SELECT DISTINCT ON (source, event_id) {_INCOMING_COLUMNS}, batch FROM usage_incoming
  ORDER BY source, event_id, seq
), {_resolve(_INCOMING_COLUMNS + ", batch")}
INSERT INTO usage_ready ({_READY_COLUMNS}, batch)
SELECT {_INCOMING_COLUMNS},
       CASE WHEN problem IS NULL THEN 'folded' ELSE 'unmatched' END, problem,
       CASE WHEN problem IS NULL THEN owner_id END,
       CASE WHEN problem IS NULL THEN attributed END,
       batch
FROM checked
"""
)

# Under the lock: store the new events, stage their sums, fold them in. Answers per batch
# with new events (batch, accepted, unmatched, days its new events touched).
_STORE_AND_FOLD = f"""
{_FOLD_LOCK};
WITH ins AS (
  INSERT INTO hopsplane.usage_events ({_READY_COLUMNS})
  SELECT {_READY_COLUMNS} FROM usage_ready ORDER BY source, event_id
  ON CONFLICT (source, event_id) DO NOTHING
  RETURNING event_id, account_owner_id, day, attributed_user_id, source, compute_units,
            cpu_seconds, status
), counted AS (
  SELECT account_owner_id, day, attributed_user_id, source, compute_units, cpu_seconds,
         1 AS n
  FROM ins WHERE status = 'folded'
), {_STAGE}
SELECT r.batch, count(*), count(*) FILTER (WHERE i.status = 'unmatched'),
       count(DISTINCT (i.account_owner_id, i.day)) FILTER (WHERE i.status = 'folded'),
       (SELECT count(*) FROM staged)
FROM ins i JOIN usage_ready r USING (source, event_id)
GROUP BY r.batch;
SET LOCAL enable_seqscan = off;
{_ENSURE_DAYS};
{_ROUNDS};
SET LOCAL enable_seqscan = on;
DELETE FROM usage_fold;
DELETE FROM usage_ready
"""


def ingest(session: Session, events: Sequence[NewEvent]) -> tuple[int, int, int]:
    """Store new events and fold them in: (accepted, unmatched, days changed)."""
    return ingest_batches(session, [events])[0]


def ingest_batches(
    session: Session, batches: Sequence[Sequence[NewEvent]]
) -> list[tuple[int, int, int]]:
    """Store the new events of several batches and fold them in, all at once: for each
    batch (accepted, unmatched, days its new events changed). An id in several batches
    counts as new in the first one only."""
    _prepare(session)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY usage_incoming ({_INCOMING_COLUMNS}, batch, seq) FROM STDIN"
    ) as copy:
        seq = 0
        for index, events in enumerate(batches):
            for event in events:
                copy.write_row((*event.row(), index, seq))
                seq += 1
    session.execute(text("ANALYZE usage_incoming"))  # row estimates for the plan below
    session.execute(_RESOLVE_BATCHES)
    results = [(0, 0, 0)] * len(batches)
    try:
        stored = _script(session, _STORE_AND_FOLD)[0]
    except psycopg.errors.NumericValueOutOfRange as exc:  # the transaction is rolled back
        raise Invalid(
            f"this batch would take an account's day past what a day holds ({MAX_DAY_UNITS:,f} "
            "units, or a cost of 99,999,999,999,999.99): nothing was stored"
        ) from exc
    for batch, accepted, unmatched, days, _staged in stored:
        results[batch] = (int(accepted), int(unmatched), int(days))
    return results


_REFOLD = text(
    f"""
WITH ev AS (
  SELECT source, event_id, account_id, project_id, namespace, cluster_id, user_id
  FROM hopsplane.usage_events
  WHERE status = 'unmatched' ORDER BY source, event_id LIMIT :limit
), {_resolve("source, event_id, account_id, project_id, namespace, cluster_id, user_id")}, upd AS (
  UPDATE hopsplane.usage_events e
  SET status = 'folded', problem = NULL, account_owner_id = c.owner_id,
      attributed_user_id = c.attributed, updated_at = now()
  FROM checked c
  WHERE e.source = c.source AND e.event_id = c.event_id AND c.problem IS NULL
    AND e.status = 'unmatched'
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
    _script(session, _FOLD_LOCK)  # before writing event rows (see the module docstring)
    folded = int(session.execute(_REFOLD, {"limit": limit}).scalar_one())
    if folded:
        _fold(session)
    return folded


def count_unmatched(session: Session) -> int:
    return int(session.execute(
        text("SELECT count(*) FROM hopsplane.usage_events WHERE status = 'unmatched'")
    ).scalar_one())


def list_unmatched(
    session: Session, *, limit: int, after: tuple[str, str] | None
) -> list[UsageEvent]:
    """By (source, event id), after the (source, event id) ``after``."""
    stmt = select(UsageEvent).where(UsageEvent.status == "unmatched")
    if after is not None:
        stmt = stmt.where(tuple_(UsageEvent.source, UsageEvent.event_id) > tuple_(*after))
    order = (UsageEvent.source, UsageEvent.event_id)
    return list(session.scalars(stmt.order_by(*order).limit(limit)))


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


def accounts_of_events(
    session: Session, sources: Sequence[str], event_ids: Sequence[str]
) -> list[str]:
    """The accounts the folded events among these (of these sources) are billed to."""
    if not event_ids:
        return []
    rows = session.execute(
        text(
            "SELECT DISTINCT account_owner_id FROM hopsplane.usage_events "
            "WHERE source = ANY(CAST(:sources AS text[])) "
            "AND event_id = ANY(CAST(:ids AS text[])) AND status = 'folded' "
            "ORDER BY account_owner_id"
        ),
        {"sources": list(sources), "ids": list(event_ids)},
    )
    return [r[0] for r in rows]


_CORRECT = text(
    f"""
WITH new AS (
  SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:cpu AS numeric[]),
                       CAST(:units AS numeric[]))
         AS n(event_id, cpu_seconds, compute_units)
), old AS (
  SELECT e.event_id, e.cpu_seconds, e.compute_units
  FROM hopsplane.usage_events e JOIN new USING (event_id) WHERE e.source = :source
), upd AS (
  UPDATE hopsplane.usage_events e
  SET cpu_seconds = new.cpu_seconds, compute_units = new.compute_units,
      revision = e.revision + 1, updated_at = now()
  FROM new WHERE e.source = :source AND e.event_id = new.event_id
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
    session: Session, corrections: Sequence[tuple[str, Decimal, Decimal]], *, source: str
) -> int:
    """Replace the values of stored collected events of ``source`` (locked by
    :func:`collected_events` in this transaction) and fold the difference in:
    (event_id, cpu_seconds, units)."""
    if not corrections:
        return 0
    ids, cpu, units = zip(*corrections, strict=True)
    _prepare(session)
    _script(session, _FOLD_LOCK)  # before writing event rows (see the module docstring)
    corrected = int(session.execute(
        _CORRECT,
        {"ids": list(ids), "cpu": list(cpu), "units": list(units), "source": source},
    ).scalar_one())
    _fold(session)
    return corrected


_HOPSWORKS_USERS = text(
    """
SELECT o.namespace, u.username, u.user_id
FROM hopsplane.cluster_assignments a
JOIN hopsplane.hopsworks_identities o ON o.user_id = a.account_id
JOIN hopsplane.hopsworks_identities u ON u.account_id = o.user_id
WHERE a.cluster_id = :cluster AND u.username IS NOT NULL AND o.namespace IS NOT NULL
"""
)


def hopsworks_users_by_namespace(
    session: Session, cluster_id: uuid.UUID
) -> dict[str, dict[str, str]]:
    """For the accounts on a cluster: namespace -> {Hopsworks username: user id} of the
    owner and the members (whom a pod's CPU may be attributed to)."""
    found: dict[str, dict[str, str]] = {}
    for namespace, username, user_id in session.execute(_HOPSWORKS_USERS, {"cluster": cluster_id}):
        found.setdefault(namespace, {})[username] = user_id
    return found


# --- clusters and tokens -----------------------------------------------------------------

# Clusters are the clusters domain's rows: read through its view hopsplane.cluster_directory.

def cluster_metadata(session: Session, cluster_id: uuid.UUID) -> dict[str, Any] | None:
    """The cluster's metadata (None: no such cluster)."""
    row = session.execute(
        text("SELECT metadata FROM hopsplane.cluster_directory WHERE id = :c"),
        {"c": cluster_id},
    ).one_or_none()
    return None if row is None else dict(row[0] or {})


def clusters_to_collect(session: Session) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Every cluster that is not disabled, with its metadata."""
    rows = session.execute(
        text(
            "SELECT id, metadata FROM hopsplane.cluster_directory "
            "WHERE status <> 'disabled' ORDER BY name"
        )
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


def cluster_of_token(session: Session, digest: str) -> tuple[uuid.UUID, str] | None:
    """The cluster whose token has this digest, and the cluster's status."""
    row = session.execute(
        text(
            "SELECT t.cluster_id, c.status FROM hopsplane.usage_ingest_tokens t "
            "JOIN hopsplane.cluster_directory c ON c.id = t.cluster_id "
            "WHERE t.token_sha256 = :d"
        ),
        {"d": digest},
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def day_count(session: Session, account_id: str) -> int:
    value = session.execute(
        text("SELECT count(*) FROM usage_tracking WHERE account_owner_id = :a"), {"a": account_id}
    ).scalar_one()
    return int(value)
