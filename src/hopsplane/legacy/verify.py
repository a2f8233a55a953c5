"""Verification of the move: the new tables against the legacy ones, set-based.

Run inside the migration before anything is dropped (any failure rolls everything back),
and by ``hopsplane legacy verify`` against a backup loaded into a scratch schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from hopsplane.crypto import SecretBox
from hopsplane.errors import Conflict, Invalid
from hopsplane.legacy.inspect import q


@dataclass(frozen=True)
class Check:
    name: str
    problems: int
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problems == 0


def _checks(s: str, only_legacy_entries: bool) -> list[tuple[str, str]]:
    """(name, SQL returning one text column per discrepancy). During the migration every
    ledger entry counts; afterwards (``hopsplane legacy verify``) only the entries the
    migration wrote (keys ``legacy:...``), so later postings do not read as mismatches."""
    ledger = ("(SELECT * FROM public.credits_ledger WHERE idempotency_key LIKE 'legacy:%')"
              if only_legacy_entries else "public.credits_ledger")
    u, a, c = q(s, "users"), q(s, "user_hopsworks_assignments"), q(s, "user_credits")
    d, h = q(s, "usage_daily"), q(s, "hopsworks_clusters")
    return [
        ("users: every legacy user, same id and email", f"""
            SELECT coalesce(o.id, n.id) || ': ' || coalesce(o.email, 'missing') || ' vs '
                   || coalesce(n.email, 'missing')
            FROM {u} o FULL JOIN public.users n ON n.id = o.id
            WHERE o.id IS NULL OR n.id IS NULL OR n.email IS DISTINCT FROM o.email
               OR n.account_owner_id IS NOT NULL"""),
        ("users: hopsworks_project_id from the earliest assignment", f"""
            SELECT n.id FROM public.users n LEFT JOIN (
                SELECT DISTINCT ON (user_id) user_id, project_id FROM {a}
                WHERE project_id IS NOT NULL
                ORDER BY user_id, coalesce(assigned_at, created_at) NULLS LAST,
                         created_at NULLS LAST, id) p ON p.user_id = n.id
            WHERE n.hopsworks_project_id IS DISTINCT FROM p.project_id"""),
        ("hopsworks_clusters: same ids", f"""
            SELECT coalesce(o.id, n.id)::text FROM {h} o
            FULL JOIN public.hopsworks_clusters n ON n.id = o.id
            WHERE o.id IS NULL OR n.id IS NULL OR n.name IS DISTINCT FROM o.name
               OR n.api_url IS DISTINCT FROM o.api_url"""),
        ("account_clusters: one row per legacy (user, cluster)", f"""
            SELECT coalesce(o.user_id, n.account_owner_id) || ' on '
                   || coalesce(o.cid, n.hopsworks_cluster_id)
            FROM (SELECT DISTINCT user_id, hopsworks_cluster_id AS cid FROM {a}) o
            FULL JOIN public.account_clusters n
              ON n.account_owner_id = o.user_id AND n.hopsworks_cluster_id = o.cid
            WHERE o.user_id IS NULL OR n.account_owner_id IS NULL"""),
        ("hopsworks_clusters: current_users equals the assigned accounts", """
            SELECT h.id::text FROM public.hopsworks_clusters h
            LEFT JOIN (SELECT hopsworks_cluster_id AS id, count(*) AS n
                       FROM public.account_clusters GROUP BY 1) x ON x.id = h.id
            WHERE h.current_users <> coalesce(x.n, 0)"""),
        ("credits_ledger: remaining credit equals the balance, to the cent", f"""
            SELECT coalesce(o.user_id, n.account_owner_id) || ': legacy '
                   || coalesce(o.remaining::text, 'none') || ', ledger '
                   || coalesce(n.balance::text, 'none')
            FROM (SELECT user_id, coalesce(total_purchased, 0) + coalesce(free_credits, 0)
                         - coalesce(total_used, 0) AS remaining FROM {c}) o
            FULL JOIN (
                SELECT DISTINCT ON (account_owner_id) account_owner_id, balance,
                       sum(amount) OVER (PARTITION BY account_owner_id) AS total
                FROM {ledger} l
                ORDER BY account_owner_id, seq DESC) n ON n.account_owner_id = o.user_id
            WHERE coalesce(o.remaining, 0) <> coalesce(n.balance, 0)
               OR coalesce(n.balance, 0) <> coalesce(n.total, 0)"""),
        ("credits_ledger: entries reproduce purchased, free and used", f"""
            SELECT coalesce(o.user_id, n.account_owner_id)
            FROM {c} o FULL JOIN (
                SELECT account_owner_id,
                       sum(amount) FILTER (WHERE type = 'purchase') AS purchased,
                       sum(amount) FILTER (WHERE type = 'grant') AS granted,
                       -sum(amount) FILTER (WHERE type = 'usage') AS used
                FROM {ledger} l
                GROUP BY 1) n ON n.account_owner_id = o.user_id
            WHERE o.user_id IS NULL
               OR coalesce(o.total_purchased, 0) <> coalesce(n.purchased, 0)
               OR coalesce(o.free_credits, 0) <> coalesce(n.granted, 0)
               OR coalesce(o.total_used, 0) <> coalesce(n.used, 0)"""),
        ("usage_tracking: compute units per (user, date)", f"""
            SELECT coalesce(o.user_id, n.account_owner_id) || ' on '
                   || coalesce(o.date, n.date) || ': legacy ' || coalesce(o.units::text, 'none')
                   || ', new ' || coalesce(n.compute_units::text, 'none')
            FROM (SELECT user_id, date, sum(coalesce(cpu_hours, 0)) * 10000 AS units,
                         count(*) AS rows
                  FROM {d} GROUP BY 1, 2) o
            FULL JOIN public.usage_tracking n
              ON n.account_owner_id = o.user_id AND n.date = o.date
            WHERE o.user_id IS NULL OR n.account_owner_id IS NULL
               OR o.units <> n.compute_units
               OR o.rows <> jsonb_array_length(n.raw_metrics -> 'per_cluster')"""),
    ]


def run_checks(conn: Connection, s: str, box: SecretBox, *, only_legacy_entries: bool = False,
               max_examples: int = 5) -> list[Check]:
    results: list[Check] = []
    for name, sql in _checks(s, only_legacy_entries):
        n, examples = conn.execute(text(
            f"SELECT count(*), (array_agg(v))[1:{max_examples}] FROM ({sql}) AS x(v)"
        )).one()
        results.append(Check(name, int(n), tuple(examples or ())))
    results.append(_check_secrets(conn, s, box))
    return results


def _check_secrets(conn: Connection, s: str, box: SecretBox) -> Check:
    """Every cluster secret decrypts to the legacy value (clusters are few)."""
    rows = conn.execute(text(
        "SELECT o.id, o.api_key, o.kubeconfig, n.api_key, n.kubeconfig "
        f"FROM {q(s, 'hopsworks_clusters')} o JOIN public.hopsworks_clusters n ON n.id = o.id"
    )).all()
    bad: list[str] = []
    for cid, old_key, old_kube, new_key, new_kube in rows:
        try:
            same = box.decrypt(new_key) == _open(box, old_key) and (
                new_kube is None if old_kube is None
                else box.decrypt(new_kube) == _open(box, old_kube))
        except Invalid:
            same = False
        if not same:
            bad.append(str(cid))
    return Check("hopsworks_clusters: secrets encrypted, decrypt to the legacy values",
                 len(bad), tuple(bad[:5]))


def _open(box: SecretBox, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return box.decrypt(value)
    except Invalid:
        return value


def require_all(checks: list[Check]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise Conflict(
            "verification failed, nothing was changed: "
            + "; ".join(f"{c.name}: {c.problems} (e.g. {', '.join(c.examples)})" for c in failed)
        )


def counts_after(conn: Connection) -> dict[str, int]:
    tables = ("users", "hopsworks_clusters", "account_clusters", "usage_tracking",
              "credits_ledger", "team_invites")
    union = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM public.{t}" for t in tables)
    return {r[0]: int(r[1]) for r in conn.execute(text(union))}
