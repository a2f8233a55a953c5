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
           u.hopsworks_username, fp.project_id,
           coalesce(u.is_admin, false) OR coalesce(u.role = 'admin', false),
           {_merge_metadata("u.metadata", legacy)}
    FROM {q(s, "users")} u
    LEFT JOIN {q(s, "user_profiles")} p ON p.user_id = u.id
    LEFT JOIN {q(s, "user_pricing_overrides")} o ON o.user_id = u.id
    LEFT JOIN (
        SELECT DISTINCT ON (user_id) user_id, project_id
        FROM {q(s, "user_hopsworks_assignments")}
        WHERE project_id IS NOT NULL
        ORDER BY user_id, coalesce(assigned_at, created_at) NULLS LAST, created_at NULLS LAST,
                 id
    ) fp ON fp.user_id = u.id
    LEFT JOIN (
        SELECT a.user_id, jsonb_agg(to_jsonb(a) - 'user_id' ORDER BY a.created_at, a.id) AS rows
        FROM {q(s, "user_hopsworks_assignments")} a GROUP BY a.user_id
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


CURRENT_USERS_SQL = """
UPDATE public.hopsworks_clusters h SET current_users = n.n
FROM (SELECT hopsworks_cluster_id AS id, count(*) AS n FROM public.account_clusters
      GROUP BY 1) n
WHERE n.id = h.id AND h.current_users IS DISTINCT FROM n.n
"""


def ledger_sql(s: str) -> str:
    return f"""
    INSERT INTO public.credits_ledger (
        account_owner_id, seq, prev_seq, prev_balance, amount, balance, type, description,
        created_at, idempotency_key)
    SELECT user_id, seq,
           CASE WHEN seq > 1 THEN seq - 1 END,
           CASE WHEN seq > 1 THEN balance - amount END,
           amount, balance, type, description, created_at,
           'legacy:' || user_id || ':' || type
    FROM (
        SELECT e.*,
               row_number() OVER w AS seq,
               sum(e.amount) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS balance
        FROM (
            SELECT c.user_id, v.ord, v.type, v.amount, v.description,
                   coalesce(c.updated_at, nu.created_at) AS created_at
            FROM {q(s, "user_credits")} c
            JOIN public.users nu ON nu.id = c.user_id
            CROSS JOIN LATERAL (VALUES
                (1, 'purchase', coalesce(c.total_purchased, 0),
                 'legacy balance: total purchased'),
                (2, 'grant', coalesce(c.free_credits, 0), 'legacy balance: free credits'),
                (3, 'usage', -coalesce(c.total_used, 0), 'legacy balance: total used')
            ) AS v(ord, type, amount, description)
            WHERE v.amount <> 0
        ) e
        WINDOW w AS (PARTITION BY e.user_id ORDER BY e.ord)
    ) x
    """


def usage_sql(s: str) -> str:
    return f"""
    INSERT INTO public.usage_tracking (
        account_owner_id, date, compute_units, user_breakdown, raw_metrics, created_at,
        updated_at)
    SELECT g.user_id, g.date, g.units,
           jsonb_build_object(g.user_id, g.units),
           jsonb_build_object(
               'source', 'legacy usage_daily',
               'gpu_hours', g.gpu_hours, 'storage_gb', g.storage_gb,
               'api_calls', g.api_calls, 'legacy_total_cost', g.total_cost,
               'per_cluster', g.rows),
           coalesce(g.first_at, g.date::timestamptz), coalesce(g.last_at, g.date::timestamptz)
    FROM (
        SELECT user_id, date,
               sum(coalesce(cpu_hours, 0)) * 10000 AS units,
               sum(coalesce(gpu_hours, 0)) AS gpu_hours,
               sum(coalesce(storage_gb, 0)) AS storage_gb,
               sum(coalesce(api_calls, 0)) AS api_calls,
               sum(coalesce(total_cost, 0)) AS total_cost,
               min(created_at) AS first_at, max(created_at) AS last_at,
               jsonb_agg(to_jsonb(u) - 'user_id' - 'date'
                         ORDER BY u.hopsworks_cluster_id NULLS LAST, u.id) AS rows
        FROM {q(s, "usage_daily")} u
        GROUP BY user_id, date
    ) AS g
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
