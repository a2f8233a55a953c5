"""A legacy database with realistic data, set-based (generate_series), deterministic.

``users=2`` gives the plan's own counts (2 users, 1 cluster, 2 assignments, 2 credit rows,
3 usage rows, every other table empty). Larger sizes add what a real legacy database has:
duplicate and undated assignments, usage of one user on two clusters the same day, users
who used more than they had, profiles, pricing overrides, a cluster in 'maintenance' whose
current_users is stale, a pair of emails that differ only by case, and rows in the
non-financial tables the plan calls unused. The financial tables stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from hopsplane.errors import Conflict, Invalid
from hopsplane.legacy.backup import driver
from hopsplane.legacy.ddl import LEGACY_DDL
from hopsplane.legacy.inspect import tables_in

USAGE_ROWS_PER_USER = 10


@dataclass(frozen=True)
class Sizes:
    users: int
    clusters: int
    usage_rows: int
    collisions: int


def sizes(users: int) -> Sizes:
    if users < 1:
        raise Invalid("--users must be at least 1")
    if users <= 2:
        return Sizes(users, 1, 3 if users == 2 else 2, 0)
    clusters = max(2, users // 50_000)
    collisions = (users - 7) // 50 + 1 if users >= 7 else 0
    return Sizes(users, clusters, USAGE_ROWS_PER_USER * users, collisions)


def _uuid(kind: str, expr: str) -> str:
    return f"md5('{kind}:' || ({expr}))::uuid"


def generate(conn: Connection, users: int) -> Sizes:
    """Create the 17 legacy tables in ``public`` (which must be empty) and fill them."""
    if tables_in(conn, "public"):
        raise Conflict("generate needs an empty database: public already holds tables")
    z = sizes(users)
    n, nc = z.users, z.clusters
    conn.execute(text("SET LOCAL timezone = 'UTC'"))
    conn.execute(text("SET LOCAL work_mem = '256MB'"))
    conn.execute(text(LEGACY_DDL))
    raw = driver(conn)

    def ex(statement: str) -> None:
        raw.execute(statement.encode())

    uid = "'auth0|' || lpad(i::text, 10, '0')"
    # a handful of legacy "clusters" (the table the plan retires)
    big = n > 2
    if big:
        ex(f"INSERT INTO clusters SELECT {_uuid('c', 'i')}, 'legacy-' || i, 'eu-north-1', "
           "'m5.xlarge', 'terminated', timestamptz '2023-01-01' + i * interval '1 day' "
           "FROM generate_series(1, 3) i")
    ex(f"""
        INSERT INTO hopsworks_clusters (id, name, api_url, api_key, max_users, current_users,
                                        status, kubeconfig, metadata)
        SELECT {_uuid('h', 'i')}, 'hopsworks-' || i, 'https://hw' || i || '.example.com',
               'hw-api-key-' || i, 100000, 0,
               CASE WHEN i = 2 THEN 'maintenance' ELSE 'active' END,
               CASE WHEN i % 2 = 1 THEN 'apiVersion: v1\nkind: Config\n# cluster ' || i END,
               jsonb_build_object('region', 'eu-' || i)
        FROM generate_series(1, {nc}) i
    """)
    ex(f"""
        INSERT INTO users (id, email, name, created_at, updated_at, last_login_at,
                           stripe_customer_id, stripe_test_customer_id, hopsworks_username,
                           is_admin, role, status, cluster_id, metadata)
        SELECT {uid},
               CASE WHEN {int(big)} = 1 AND i = 3 THEN 'User2@example.com'
                    ELSE 'user' || i || '@example.com' END,
               CASE WHEN i % 7 = 0 THEN NULL ELSE 'User ' || i END,
               timestamptz '2024-01-01' + i * interval '7 seconds',
               timestamptz '2024-06-01' + i * interval '5 seconds',
               CASE WHEN i % 3 = 0 THEN timestamptz '2025-01-01' + i * interval '3 seconds' END,
               'cus_' || i, CASE WHEN i % 4 = 0 THEN 'cus_test_' || i END,
               'hw_user_' || i,
               i = 1, CASE WHEN i % 1000 = 2 THEN 'admin' ELSE 'user' END,
               CASE WHEN i % 100 = 9 THEN 'suspended' ELSE 'active' END,
               CASE WHEN {int(big)} = 1 AND i % 500 = 1 THEN {_uuid('c', '1')} END,
               CASE WHEN i % 10 = 0 THEN jsonb_build_object('signup', 'web') ELSE '{{}}' END
        FROM generate_series(1, {n}) i
    """)
    # one assignment per user; every 100th user (from the 3rd) assigned twice to the same
    # cluster; every 20th (from the 5th) without assigned_at
    ex(f"""
        INSERT INTO user_hopsworks_assignments (id, user_id, hopsworks_cluster_id,
            hopsworks_username, hopsworks_user_id, project_id, assigned_at, assigned_by,
            status, created_at)
        SELECT {_uuid('a', 'i')}, {uid}, {_uuid('h', f'(i % {nc}) + 1')}, 'hw_user_' || i,
               10000 + i, CASE WHEN i % 5 <> 0 THEN 500 + i END,
               CASE WHEN i % 20 = 5 THEN NULL
                    ELSE timestamptz '2024-02-01' + i * interval '7 seconds' END,
               'admin@hopsworks.ai', 'active',
               timestamptz '2024-02-01' + i * interval '6 seconds'
        FROM generate_series(1, {n}) i
    """)
    if big:
        ex(f"""
            INSERT INTO user_hopsworks_assignments (id, user_id, hopsworks_cluster_id,
                hopsworks_username, project_id, assigned_at, assigned_by, status, created_at)
            SELECT {_uuid('a2', 'i')}, {uid}, {_uuid('h', f'(i % {nc}) + 1')}, 'hw_user_' || i,
                   900 + i, timestamptz '2024-09-01' + i * interval '1 second', 'ops', 'active',
                   timestamptz '2024-09-01'
            FROM generate_series(3, {n}, 100) i
        """)
        # the maintenance cluster's counter is stale
        ex(f"UPDATE hopsworks_clusters SET current_users = 1 WHERE id = {_uuid('h', '2')}")
    ex(f"""
        UPDATE hopsworks_clusters h SET current_users = x.n
        FROM (SELECT hopsworks_cluster_id, count(DISTINCT user_id) AS n
              FROM user_hopsworks_assignments GROUP BY 1) x
        WHERE x.hopsworks_cluster_id = h.id AND h.id <> {_uuid('h', '2')}
    """)
    ex(f"""
        INSERT INTO user_credits (user_id, total_purchased, total_used, free_credits, updated_at)
        SELECT {uid}, (i % 50) * 10.00,
               CASE WHEN i % 97 = 0 THEN (i % 50) * 10.00 + 12.34 ELSE (i % 23) * 1.37 END,
               CASE WHEN i % 3 = 0 THEN 5.00 ELSE 0 END,
               timestamptz '2025-01-01' + i * interval '11 seconds'
        FROM generate_series(1, {n}) i
    """)
    base = z.usage_rows - z.collisions
    ex(f"""
        INSERT INTO usage_daily (id, user_id, date, hopsworks_cluster_id, cpu_hours, gpu_hours,
            storage_gb, api_calls, total_cost, reported_to_stripe, created_at)
        SELECT {_uuid('d', 'k')}, 'auth0|' || lpad((((k - 1) % {n}) + 1)::text, 10, '0'),
               date '2025-01-01' + ((k - 1) / {n})::int,
               {_uuid('h', f'(((k - 1) % {n}) + 1) % {nc} + 1')},
               ((k * 37) % 2000) / 100.0, ((k * 13) % 300) / 100.0, ((k * 7) % 5000) / 10.0,
               (k * 11) % 10000, ((k * 37) % 2000) / 100.0,
               k % 2 = 0, timestamptz '2025-01-02' + ((k - 1) / {n}) * interval '1 day'
        FROM generate_series(1, {base}) k
    """)
    if z.collisions:
        # the same user and day on a second cluster
        ex(f"""
            INSERT INTO usage_daily (id, user_id, date, hopsworks_cluster_id, cpu_hours,
                gpu_hours, storage_gb, api_calls, total_cost, reported_to_stripe, created_at)
            SELECT {_uuid('d2', 'i')}, {uid}, date '2025-01-01',
                   {_uuid('h', f'(i + 1) % {nc} + 1')}, 1.2345, 0, 10, 100, 1.23, false,
                   timestamptz '2025-01-02 06:00'
            FROM generate_series(7, {n}, 50) i
        """)
    if big:
        ex(f"""INSERT INTO user_profiles SELECT {uid}, 'Full Name ' || i, 'Company ' || (i % 97),
               'SE', '+46 70 ' || lpad(i::text, 7, '0'), NULL, timestamptz '2024-01-02'
               FROM generate_series(2, {n}, 2) i""")
        ex(f"""INSERT INTO user_pricing_overrides SELECT {uid}, 0.00008, 20.00,
               timestamptz '2024-03-01' FROM generate_series(500, {n}, 500) i""")
        ex("""INSERT INTO stripe_products VALUES
               ('prod_credits', 'Credits', 'price_1', 1000, 'usd', true),
               ('prod_old', 'Old plan', 'price_0', 4900, 'usd', false)""")
        ex(f"""INSERT INTO usage_metrics (user_id, metric, value, recorded_at)
               SELECT {uid}, 'cpu_seconds', i * 3.5, timestamptz '2024-05-01'
               FROM generate_series(1, {n}, 10) i""")
        ex(f"""INSERT INTO feature_groups SELECT {_uuid('f', 'i')}, {uid}, {_uuid('c', '1')},
               'fg_' || i, 1, timestamptz '2024-04-01' FROM generate_series(1, {n}, 100) i""")
        ex(f"""INSERT INTO model_deployments SELECT {_uuid('m', 'i')}, {uid},
               {_uuid('c', '2')}, 'model_' || i, 'stopped', timestamptz '2024-04-02'
               FROM generate_series(1, {n}, 200) i""")
        ex("""INSERT INTO instances_backup VALUES
               ('i-1', 'auth0|0000000001', 'm5.large', 'terminated', '{"az": "a"}',
                timestamptz '2023-06-01'),
               ('i-2', 'auth0|gone', 'm5.large', 'terminated', '{}', timestamptz '2023-06-01')""")
    conn.execute(text("ANALYZE"))
    return z
