"""The data move, set-based: one INSERT ... SELECT per new table, from the schema that holds
the legacy tables (``L``) into the new tables in ``public``.

Decisions (also in docs/schema.md, "The legacy cleanup"):
- every legacy user is an account owner; whatever has no column goes to
  ``metadata.legacy`` (updated_at, role, status, is_admin, cluster_id, the profile, the
  pricing override and the raw assignment rows);
- assignments collapse per (user, cluster) to the earliest effective assignment; a missing
  ``assigned_at`` becomes the assignment's ``created_at``, else the user's ``created_at``;
- the ledger gets purchase, grant, usage (each when non-zero), in that order, with
  deterministic idempotency keys ``legacy:<user_id>:<type>``, dated at
  ``user_credits.updated_at`` (else the user's ``created_at``);
- usage is summed per (user, date); ``compute_units = cpu_hours x 10000``; the price is the
  default (user_pricing_overrides was never applied by the legacy system).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from hopsplane.crypto import SecretBox
from hopsplane.errors import Invalid
from hopsplane.legacy.ddl import LEGACY_COLUMNS
from hopsplane.legacy.inspect import KNOWN_CLUSTER_STATUSES, q

EPOCH = "timestamptz '1970-01-01 00:00:00+00'"

# Legacy cluster status -> new status. Anything else (NULL included) becomes 'disabled':
# no new accounts are placed on a cluster nobody can vouch for; existing assignments stay.
STATUS_MAP: dict[str, str] = {
    "active": "active", "online": "active", "running": "active", "healthy": "active",
    "ready": "active",
    "draining": "draining", "maintenance": "draining", "full": "draining",
    "degraded": "draining",
    "disabled": "disabled", "inactive": "disabled", "offline": "disabled",
    "decommissioned": "disabled", "deleted": "disabled", "error": "disabled",
}
assert set(STATUS_MAP.values()) <= set(KNOWN_CLUSTER_STATUSES)


def _merge_metadata(original: str, legacy: str) -> str:
    """original || {"legacy": ...}; when the original is not an object or already has a
    "legacy" key, it is kept whole under legacy.metadata instead."""
    return (
        f"CASE WHEN jsonb_typeof(coalesce({original}, '{{}}'::jsonb)) = 'object' "
        f"AND NOT coalesce({original}, '{{}}'::jsonb) ? 'legacy' "
        f"THEN coalesce({original}, '{{}}'::jsonb) || jsonb_build_object('legacy', {legacy}) "
        f"ELSE jsonb_build_object('legacy', {legacy} || jsonb_build_object('metadata', "
        f"{original})) END"
    )


def users_sql(s: str) -> str:
    other = (f"SELECT 1 FROM {q(s, 'user_hopsworks_assignments')} o "
             "WHERE o.user_id = a.user_id AND o.ctid <> a.ctid")
    legacy = (
        "jsonb_strip_nulls(jsonb_build_object("
        "'updated_at', u.updated_at, 'role', u.role, 'status', u.status, "
        "'is_admin', u.is_admin, 'cluster_id', u.cluster_id, "
        "'created_at_missing', CASE WHEN u.created_at IS NULL THEN true END, "
        "'profile', to_jsonb(p) - 'user_id', "
        "'pricing_override', to_jsonb(o) - 'user_id', "
        "'assignments', ag.rows))"
    )
    return f"""
    INSERT INTO public.users (
        id, email, name, created_at, last_login_at, account_owner_id, stripe_customer_id,
        stripe_test_customer_id, hopsworks_username, hopsworks_project_id,
        is_platform_admin, metadata)
    SELECT u.id, u.email, coalesce(u.name, p.full_name),
           coalesce(u.created_at, u.updated_at, p.created_at, {EPOCH}),
           u.last_login_at, NULL, u.stripe_customer_id, u.stripe_test_customer_id,
           u.hopsworks_username, ag.project_id,
           coalesce(u.is_admin, false) OR coalesce(u.role = 'admin', false),
           {_merge_metadata("u.metadata", legacy)}
    FROM {q(s, "users")} u
    LEFT JOIN {q(s, "user_profiles")} p ON p.user_id = u.id
    LEFT JOIN {q(s, "user_pricing_overrides")} o ON o.user_id = u.id
    LEFT JOIN (
        -- users with one assignment (nearly all): no aggregate, no per-user sort
        SELECT a.user_id, jsonb_build_array(to_jsonb(a) - 'user_id') AS rows, a.project_id
        FROM {q(s, "user_hopsworks_assignments")} a WHERE NOT EXISTS ({other})
        UNION ALL
        -- several: the project of the earliest assignment that has one
        SELECT a.user_id, jsonb_agg(to_jsonb(a) - 'user_id' ORDER BY a.created_at, a.id),
               (array_agg(a.project_id ORDER BY coalesce(a.assigned_at, a.created_at) NULLS LAST,
                                                a.created_at NULLS LAST, a.id)
                  FILTER (WHERE a.project_id IS NOT NULL))[1]
        FROM {q(s, "user_hopsworks_assignments")} a WHERE EXISTS ({other})
        GROUP BY a.user_id
    ) ag ON ag.user_id = u.id
    """


def account_clusters_sql(s: str) -> str:
    return f"""
    INSERT INTO public.account_clusters (
        account_owner_id, hopsworks_cluster_id, assigned_at, assigned_by)
    SELECT DISTINCT ON (a.user_id, a.hopsworks_cluster_id)
           a.user_id, a.hopsworks_cluster_id,
           coalesce(a.assigned_at, a.created_at, nu.created_at), a.assigned_by
    FROM {q(s, "user_hopsworks_assignments")} a
    JOIN public.users nu ON nu.id = a.user_id
    ORDER BY a.user_id, a.hopsworks_cluster_id,
             coalesce(a.assigned_at, a.created_at, nu.created_at), a.created_at NULLS LAST, a.id
    """


def ledger_sql(s: str) -> str:
    """At most three entries per user in a fixed order (purchase, grant, usage; zero ones
    skipped), so seq and the running balance follow from the row itself: no window
    function, no sort. seq = 1 + the non-zero entries before it; balance = the sum of the
    amounts up to it (a skipped entry adds 0)."""
    return f"""
    INSERT INTO public.credits_ledger (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type, description,
        created_at, idempotency_key)
    SELECT c.user_id, v.seq,
           CASE WHEN v.seq > 1 THEN v.seq - 1 END,
           CASE WHEN v.seq > 1 THEN v.balance - v.amount END,
           v.amount, v.balance, v.type, v.description,
           coalesce(c.updated_at, nu.created_at),
           'legacy:' || c.user_id || ':' || v.type
    FROM (
        SELECT user_id, updated_at,
               coalesce(total_purchased, 0) AS p, coalesce(free_credits, 0) AS g,
               coalesce(total_used, 0) AS u
        FROM {q(s, "user_credits")}
    ) c
    JOIN public.users nu ON nu.id = c.user_id
    CROSS JOIN LATERAL (VALUES
        (1, 'purchase', c.p, c.p, 'legacy balance: total purchased'),
        (1 + (c.p <> 0)::int, 'grant', c.g, c.p + c.g, 'legacy balance: free credits'),
        (1 + (c.p <> 0)::int + (c.g <> 0)::int, 'usage', -c.u, c.p + c.g - c.u,
         'legacy balance: total used')
    ) AS v(seq, type, amount, balance, description)
    WHERE v.amount <> 0
    """


def _usage_insert(select: str) -> str:
    return f"""
    INSERT INTO public.usage_tracking (
        account_owner_id, date, compute_units, user_breakdown, raw_metrics, created_at,
        updated_at)
    SELECT g.user_id, g.date, g.units,
           jsonb_build_object(g.user_id, g.units) AS user_breakdown,
           jsonb_build_object(
               'source', 'legacy usage_daily',
               'gpu_hours', g.gpu_hours, 'storage_gb', g.storage_gb,
               'api_calls', g.api_calls, 'legacy_total_cost', g.total_cost,
               'per_cluster', g.rows) AS raw_metrics,
           coalesce(g.first_at, g.date::timestamptz) AS created_at,
           coalesce(g.last_at, g.date::timestamptz) AS updated_at
    FROM ({select}) AS g
    """


def _usage_row(alias: str) -> str:
    """A legacy usage row as a JSON object: every column but the two that became the key."""
    kept = [c for c in LEGACY_COLUMNS["usage_daily"] if c not in ("user_id", "date")]
    return "jsonb_build_object(" + ", ".join(f"'{c}', {alias}.{c}" for c in kept) + ")"


def _same_day_elsewhere(s: str, alias: str) -> str:
    """Another legacy row of the same user and date (ctid: rows are told apart even if the
    legacy ids were not unique)."""
    return (f"SELECT 1 FROM {q(s, 'usage_daily')} o WHERE o.user_id = {alias}.user_id "
            f"AND o.date = {alias}.date AND o.ctid <> {alias}.ctid")


def usage_sql(s: str) -> list[str]:
    """Usage summed per (user, date), in two statements that together cover every legacy
    row once: the (user, date) pairs with a single row (nearly all of them) are moved row
    for row, with no aggregation, so no sort and no per-group aggregate state; the few
    pairs with rows on several clusters are summed with GROUP BY, their rows kept in
    cluster order. Both produce exactly what the GROUP BY would produce for a one-row
    group (a sum of one value is the value, the array holds one row)."""
    single = f"""
        SELECT u.user_id, u.date,
               coalesce(u.cpu_hours, 0) * 10000 AS units,
               coalesce(u.gpu_hours, 0) AS gpu_hours,
               coalesce(u.storage_gb, 0) AS storage_gb,
               coalesce(u.api_calls, 0)::bigint AS api_calls,
               coalesce(u.total_cost, 0) AS total_cost,
               u.created_at AS first_at, u.created_at AS last_at,
               jsonb_build_array({_usage_row("u")}) AS rows
        FROM {q(s, "usage_daily")} u
        WHERE NOT EXISTS ({_same_day_elsewhere(s, "u")})"""
    several = f"""
        SELECT user_id, date,
               sum(coalesce(cpu_hours, 0)) * 10000 AS units,
               sum(coalesce(gpu_hours, 0)) AS gpu_hours,
               sum(coalesce(storage_gb, 0)) AS storage_gb,
               sum(coalesce(api_calls, 0)) AS api_calls,
               sum(coalesce(total_cost, 0)) AS total_cost,
               min(created_at) AS first_at, max(created_at) AS last_at,
               jsonb_agg({_usage_row("u")}
                         ORDER BY u.hopsworks_cluster_id NULLS LAST, u.id) AS rows
        FROM {q(s, "usage_daily")} u
        WHERE EXISTS ({_same_day_elsewhere(s, "u")})
        GROUP BY user_id, date"""
    return [_usage_insert(single), _usage_insert(several)]


# The row triggers of the new tables that a bulk load replaces with one set-based
# statement each (see service.migrate: disabled for the load, the statement run, enabled
# again, all inside the migration's transaction).
BULK_TRIGGERS: dict[str, str] = {
    # +1 on hopsworks_clusters.current_users per inserted row: a million updates of the
    # same few cluster rows, each a new row version (quadratic in practice)
    "account_clusters": "account_clusters_count",
    # looks up hopsplane.price_overrides once per usage row
    "usage_tracking": "usage_tracking_price_override",
}

CURRENT_USERS_GUARD = "hopsworks_clusters_current_users_derived"

# What account_clusters_count would have done: current_users = the assigned accounts.
# The guard trigger refuses direct writes of current_users, so it is disabled around this
# one statement (as revision 0005 does for the same reason); the not-overfull CHECK holds.
CURRENT_USERS_SQL = """
UPDATE public.hopsworks_clusters h SET current_users = coalesce(n.n, 0)
FROM public.hopsworks_clusters h2
LEFT JOIN (SELECT hopsworks_cluster_id AS id, count(*) AS n FROM public.account_clusters
           GROUP BY 1) n ON n.id = h2.id
WHERE h2.id = h.id AND h.current_users IS DISTINCT FROM coalesce(n.n, 0)
"""

# What usage_tracking_price_override would have done: the newest override in force on the
# row's date sets unit_price (price_overrides is new with the schema, so this finds none
# during a migration; it is here so that the result never depends on that).
PRICE_OVERRIDES_SQL = """
UPDATE public.usage_tracking t SET unit_price = o.unit_price
FROM (SELECT DISTINCT ON (t2.id) t2.id, o.unit_price
      FROM public.usage_tracking t2
      JOIN hopsplane.price_overrides o
        ON o.account_owner_id = t2.account_owner_id AND o.effective_from <= t2.date
      ORDER BY t2.id, o.effective_from DESC) o
WHERE o.id = t.id AND t.unit_price IS DISTINCT FROM o.unit_price
"""


def status_case(column: str) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in STATUS_MAP.items())
    return f"CASE lower(btrim({column})) {whens} ELSE 'disabled' END"


def move_clusters(conn: Connection, s: str, box: SecretBox) -> int:
    """Clusters keep their ids; secrets are encrypted with the configured keys (a value that
    already decrypts with them is kept). Clusters are few: encryption happens in Python,
    the rest in SQL."""
    rows = conn.execute(text(
        f"SELECT id, api_key, kubeconfig FROM {q(s, 'hopsworks_clusters')} ORDER BY id"
    )).all()
    params = [
        {"id": r.id, "api_key": _seal(box, r.api_key), "kubeconfig": _seal(box, r.kubeconfig)}
        for r in rows
    ]
    if not params:
        return 0
    conn.execute(text("CREATE TEMP TABLE legacy_cluster_secrets "
                      "(id uuid PRIMARY KEY, api_key text, kubeconfig text) ON COMMIT DROP"))
    conn.execute(text("INSERT INTO legacy_cluster_secrets VALUES (:id, :api_key, :kubeconfig)"),
                 params)
    legacy = (
        "jsonb_strip_nulls(jsonb_build_object('status', h.status, "
        "'current_users', h.current_users))"
    )
    result = conn.execute(text(f"""
        INSERT INTO public.hopsworks_clusters (
            id, name, api_url, api_key, max_users, current_users, status, kubeconfig, metadata)
        SELECT h.id, h.name, h.api_url, k.api_key, coalesce(h.max_users, 100), 0,
               {status_case("h.status")}, k.kubeconfig,
               {_merge_metadata("h.metadata", legacy)}
        FROM {q(s, "hopsworks_clusters")} h JOIN legacy_cluster_secrets k ON k.id = h.id
    """))
    conn.execute(text("DROP TABLE legacy_cluster_secrets"))
    return int(result.rowcount)


def _seal(box: SecretBox, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        box.decrypt(value)
    except Invalid:
        return box.encrypt(value)
    return value
