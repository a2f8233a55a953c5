"""Read-only look at a database: is it the legacy schema, how many rows, what is odd.

Every query here takes the schema that holds the legacy tables as a parameter, so the same
checks run on ``public`` (before the move) and on the staging schema (during it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection, text

from hopsplane.db.models import PUBLIC_TABLES
from hopsplane.legacy.ddl import (
    FINANCIAL_EXPECTED_EMPTY,
    FOLDED_INTO_USERS,
    LEGACY_COLUMNS,
    LEGACY_TABLES,
    RETIRED,
)

Severity = Literal["blocking", "warning"]
StateKind = Literal["legacy", "migrated", "empty", "unknown"]

KNOWN_CLUSTER_STATUSES = ("active", "draining", "disabled")


@dataclass(frozen=True)
class Anomaly:
    code: str
    severity: Severity
    table: str
    count: int
    detail: str
    examples: tuple[str, ...] = ()


@dataclass
class State:
    kind: StateKind
    differences: list[str] = field(default_factory=list)


def q(schema: str, table: str) -> str:
    """A quoted, schema-qualified table name (names come from our own constants)."""
    return f'"{schema}"."{table}"'


def tables_in(conn: Connection, schema: str) -> set[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p')"
        ),
        {"s": schema},
    )
    return {r[0] for r in rows}


def columns_of(conn: Connection, schema: str) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        text(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND a.attnum > 0
              AND NOT a.attisdropped
            ORDER BY c.relname, a.attnum
            """
        ),
        {"s": schema},
    )
    out: dict[str, dict[str, str]] = {}
    for table, column, type_ in rows:
        out.setdefault(table, {})[column] = type_
    return out


def legacy_differences(conn: Connection, schema: str = "public") -> list[str]:
    """Every way the tables in ``schema`` differ from the legacy schema (empty: it matches)."""
    actual = columns_of(conn, schema)
    problems: list[str] = []
    for table in LEGACY_TABLES:
        if table not in actual:
            problems.append(f"table {table} is missing")
            continue
        want, have = LEGACY_COLUMNS[table], actual[table]
        for column, type_ in want.items():
            if column not in have:
                problems.append(f"{table}.{column} is missing (expected {type_})")
            elif have[column] != type_:
                problems.append(f"{table}.{column} is {have[column]}, expected {type_}")
        for column in have:
            if column not in want:
                problems.append(f"{table}.{column} is not part of the legacy schema")
    for table in sorted(set(actual) - set(LEGACY_TABLES)):
        problems.append(f"table {table} is not part of the legacy schema")
    return problems


def detect_state(conn: Connection) -> State:
    """legacy (17 tables, ready to migrate), migrated (the new schema, nothing to do), empty,
    or unknown (with what differs from the legacy schema)."""
    public = tables_in(conn, "public")
    version_table = conn.execute(
        text("SELECT to_regclass('hopsplane.alembic_version') IS NOT NULL")
    ).scalar_one()
    if not public and not version_table:
        return State("empty")
    if version_table and public == set(PUBLIC_TABLES):
        return State("migrated")
    differences = legacy_differences(conn, "public")
    if not differences and not version_table:
        return State("legacy")
    if version_table:
        differences.insert(0, "the schema hopsplane.alembic_version exists next to other tables")
    return State("unknown", differences)


def row_counts(conn: Connection, schema: str, tables: tuple[str, ...] = LEGACY_TABLES
               ) -> dict[str, int]:
    union = " UNION ALL ".join(
        f"SELECT '{t}', count(*) FROM {q(schema, t)}" for t in tables
    )
    return {r[0]: int(r[1]) for r in conn.execute(text(union))}


def other_connections(conn: Connection) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT pid, coalesce(usename, '?'), coalesce(application_name, ''), "
            "coalesce(client_addr::text, 'local'), state FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
    )
    return [f"pid {p} user {u} app {a!r} from {c} ({s})" for p, u, a, c, s in rows]


def _anomaly_queries(s: str) -> list[tuple[str, Severity, str, str, str]]:
    """(code, severity, table, detail, SQL returning one text column per offending item)."""
    u, a, c = q(s, "users"), q(s, "user_hopsworks_assignments"), q(s, "user_credits")
    d, h = q(s, "usage_daily"), q(s, "hopsworks_clusters")
    known = ", ".join(f"'{x}'" for x in KNOWN_CLUSTER_STATUSES)
    return [
        ("duplicate_assignments", "warning", "user_hopsworks_assignments",
         "(user, cluster) pairs assigned more than once; they collapse to the earliest",
         f"SELECT user_id || ' on ' || hopsworks_cluster_id FROM {a} "
         "GROUP BY user_id, hopsworks_cluster_id HAVING count(*) > 1"),
        ("several_clusters", "blocking", "user_hopsworks_assignments",
         "users assigned to more than one cluster; an account lives on one cluster "
         "(revision 0005): remove the extra assignments in the legacy table first",
         f"SELECT user_id FROM {a} GROUP BY user_id "
         "HAVING count(DISTINCT hopsworks_cluster_id) > 1"),
        ("overfull_clusters", "blocking", "hopsworks_clusters",
         "clusters with more assigned users than max_users; raise max_users (or move "
         "users) in the legacy table first",
         f"SELECT x.name || ': ' || n.n || ' users, max ' || x.max_users FROM {h} x "
         f"JOIN (SELECT hopsworks_cluster_id AS id, count(DISTINCT user_id) AS n FROM {a} "
         "GROUP BY 1) n ON n.id = x.id WHERE n.n > coalesce(x.max_users, 100)"),
        ("missing_assigned_at", "warning", "user_hopsworks_assignments",
         "assignments without assigned_at; they get the assignment's created_at, "
         "else the user's created_at",
         f"SELECT id::text FROM {a} WHERE assigned_at IS NULL"),
        ("usage_collisions", "warning", "usage_daily",
         "(user, date) with rows on several clusters; they are summed into one day",
         f"SELECT user_id || ' on ' || date FROM {d} GROUP BY user_id, date "
         "HAVING count(*) > 1"),
        ("orphan_assignments", "blocking", "user_hopsworks_assignments",
         "assignments without an existing user or cluster",
         f"SELECT x.id::text FROM {a} x WHERE x.user_id IS NULL "
         f"OR x.hopsworks_cluster_id IS NULL "
         f"OR NOT EXISTS (SELECT 1 FROM {u} WHERE id = x.user_id) "
         f"OR NOT EXISTS (SELECT 1 FROM {h} WHERE id = x.hopsworks_cluster_id)"),
        ("orphan_usage", "blocking", "usage_daily",
         "usage rows without an existing user",
         f"SELECT x.id::text FROM {d} x WHERE x.user_id IS NULL "
         f"OR NOT EXISTS (SELECT 1 FROM {u} WHERE id = x.user_id)"),
        ("orphan_credits", "blocking", "user_credits",
         "credit rows without an existing user",
         f"SELECT x.user_id FROM {c} x WHERE NOT EXISTS (SELECT 1 FROM {u} WHERE id = x.user_id)"),
        ("orphan_rows_in_retired_tables", "warning", "instances_backup",
         "instances_backup rows whose user does not exist (the table has no keys)",
         f"SELECT coalesce(x.id, '?') FROM {q(s, 'instances_backup')} x "
         f"WHERE x.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {u} WHERE id = x.user_id)"),
        ("negative_remaining_credit", "warning", "user_credits",
         "users who used more than they had; the ledger keeps the negative balance",
         f"SELECT user_id || ': ' || (coalesce(total_purchased, 0) + coalesce(free_credits, 0)"
         f" - coalesce(total_used, 0)) FROM {c} "
         "WHERE coalesce(total_purchased, 0) + coalesce(free_credits, 0) "
         "- coalesce(total_used, 0) < 0"),
        ("negative_credit_columns", "blocking", "user_credits",
         "negative total_purchased, free_credits or total_used cannot be posted",
         f"SELECT user_id FROM {c} WHERE total_purchased < 0 OR free_credits < 0 "
         "OR total_used < 0"),
        ("negative_usage", "blocking", "usage_daily", "negative cpu_hours",
         f"SELECT id::text FROM {d} WHERE cpu_hours < 0"),
        ("current_users_disagree", "warning", "hopsworks_clusters",
         "current_users differs from the assigned accounts; it is recomputed",
         f"SELECT x.name || ': ' || coalesce(x.current_users::text, 'NULL') || ' vs ' || "
         f"coalesce(n.n, 0) FROM {h} x LEFT JOIN (SELECT hopsworks_cluster_id AS id, "
         f"count(DISTINCT user_id) AS n FROM {a} GROUP BY 1) n ON n.id = x.id "
         "WHERE x.current_users IS DISTINCT FROM coalesce(n.n, 0)"),
        ("unknown_cluster_status", "warning", "hopsworks_clusters",
         f"status outside ({known}); mapped as docs/schema.md says, original kept in metadata",
         f"SELECT name || ': ' || coalesce(status, 'NULL') FROM {h} "
         f"WHERE status IS NULL OR status NOT IN ({known})"),
        ("bad_cluster_fields", "blocking", "hopsworks_clusters",
         "clusters with an empty name, a non-http(s) api_url or negative max_users",
         f"SELECT id::text FROM {h} WHERE name = '' OR api_url !~ '^https?://' "
         "OR max_users < 0"),
        ("email_case_duplicates", "warning", "users",
         "emails that differ only by case (both kept: uniqueness is case-sensitive)",
         f"SELECT string_agg(email, ' / ' ORDER BY email) FROM {u} GROUP BY lower(email) "
         "HAVING count(*) > 1"),
        ("bad_user_fields", "blocking", "users",
         "users with an empty id, an email without the user@domain shape, or an id too "
         "long for a ledger key",
         f"SELECT coalesce(id, 'NULL') FROM {u} WHERE id = '' OR email !~ '^[^@\\s]+@[^@\\s]+$' "
         "OR length(id) > 200"),
        ("duplicate_stripe_customers", "blocking", "users",
         "one Stripe customer id on several users (the new schema makes it unique)",
         f"SELECT v FROM (SELECT stripe_customer_id AS v FROM {u} UNION ALL "
         f"SELECT stripe_test_customer_id || ' (test)' FROM {u}) x WHERE v IS NOT NULL "
         "GROUP BY v HAVING count(*) > 1"),
        ("missing_created_at", "warning", "users",
         "users without created_at; they get updated_at, else the profile's created_at, "
         "else 1970-01-01",
         f"SELECT id FROM {u} WHERE created_at IS NULL"),
    ]


def find_anomalies(
    conn: Connection,
    schema: str,
    counts: dict[str, int],
    allow_drop_nonempty: frozenset[str] = frozenset(),
    *,
    blocking_only: bool = False,
    max_examples: int = 5,
) -> list[Anomaly]:
    """Every anomaly (``plan``), or only those that stop the migration (``migrate``, which
    runs under its locks and leaves the warnings to ``plan``: they cost full scans)."""
    found: list[Anomaly] = []
    for code, severity, table, detail, sql in _anomaly_queries(schema):
        if blocking_only and severity != "blocking":
            continue
        count_sql = f"SELECT count(*), (array_agg(v))[1:{max_examples}] FROM ({sql}) AS x(v)"
        n, examples = conn.execute(text(count_sql)).one()
        if n:
            found.append(Anomaly(code, severity, table, int(n), detail, tuple(examples or ())))
    for table in RETIRED:
        n = counts.get(table, 0)
        if not n:
            continue
        if table in FINANCIAL_EXPECTED_EMPTY:
            allowed = table in allow_drop_nonempty
            found.append(Anomaly(
                "nonempty_financial_table", "warning" if allowed else "blocking", table, n,
                f"{table} should be empty but holds {n} rows; "
                + ("allowed by --allow-drop-nonempty (kept in the backup)" if allowed
                   else f"pass --allow-drop-nonempty {table} to retire it anyway "
                        "(it is in the backup either way)"),
            ))
        elif blocking_only:
            continue
        elif table in FOLDED_INTO_USERS:
            found.append(Anomaly(
                "rows_in_unused_table", "warning", table, n,
                f"the plan calls {table} unused; its rows are kept in users.metadata.legacy"
                + (" (prices are NOT applied to usage, see docs/schema.md)"
                   if table == "user_pricing_overrides" else ""),
            ))
        else:
            found.append(Anomaly(
                "rows_in_unused_table", "warning", table, n,
                f"the plan calls {table} unused but it holds {n} rows; retired (in the backup)",
            ))
    return found
