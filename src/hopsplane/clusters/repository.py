"""SQL of the clusters domain: hopsworks_clusters, account_clusters and the Hopsworks
columns of users. The only module of the domain that writes SQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, select, text, update
from sqlalchemy.orm import Session

from hopsplane.db.models import AccountCluster, HopsworksCluster, StoppedWorkload, User


def insert_cluster(session: Session, **values: Any) -> HopsworksCluster:
    cluster = HopsworksCluster(**values)
    session.add(cluster)
    session.flush()
    session.refresh(cluster)
    return cluster


def get_cluster(
    session: Session, cluster_id: uuid.UUID, *, lock: bool = False
) -> HopsworksCluster | None:
    stmt = select(HopsworksCluster).where(HopsworksCluster.id == cluster_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def get_cluster_by_name(session: Session, name: str) -> HopsworksCluster | None:
    return session.scalars(
        select(HopsworksCluster).where(func.lower(HopsworksCluster.name) == name.lower())
    ).one_or_none()


def list_clusters(
    session: Session, *, limit: int, after: tuple[str, uuid.UUID] | None = None
) -> list[HopsworksCluster]:
    stmt = select(HopsworksCluster)
    if after is not None:
        stmt = stmt.where(
            text("(name, id) > (:after_name, :after_id)").bindparams(
                after_name=after[0], after_id=after[1]
            )
        )
    return list(
        session.scalars(stmt.order_by(HopsworksCluster.name, HopsworksCluster.id).limit(limit))
    )


def update_cluster(session: Session, cluster: HopsworksCluster, **values: Any) -> HopsworksCluster:
    for key, value in values.items():
        setattr(cluster, key, value)
    session.flush()
    session.refresh(cluster)
    return cluster


def lock_clusters(session: Session, ids: list[uuid.UUID]) -> None:
    """Lock these cluster rows in id order (the order placements use), so a move and a
    placement never wait for each other in a cycle."""
    session.execute(
        text("SELECT id FROM hopsworks_clusters WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": ids},
    ).all()


_PLACE = text(
    """
    WITH locked AS (
        SELECT id, max_users, current_users FROM hopsworks_clusters
        WHERE status = 'active' ORDER BY id FOR UPDATE
    ), chosen AS (
        SELECT id FROM locked WHERE current_users < max_users
        ORDER BY max_users - current_users DESC, id LIMIT 1
    )
    INSERT INTO account_clusters (account_owner_id, hopsworks_cluster_id, assigned_by)
    SELECT :owner, id, :by FROM chosen
    RETURNING account_owner_id, hopsworks_cluster_id, assigned_at, assigned_by
    """
)


def place_on_emptiest(
    session: Session, account_id: str, assigned_by: str | None
) -> Any | None:
    """In one statement: lock every active cluster row in id order (a stable order, so
    placements and moves never deadlock), pick the one with the most free capacity (ties:
    lowest id) and insert the assignment. FOR UPDATE hands back the newest committed
    version of each row it locks, so the counts compared are the ones the locks protect.
    None when no active cluster has room, else the new row."""
    return session.execute(_PLACE, {"owner": account_id, "by": assigned_by}).one_or_none()


def assignment_of(session: Session, account_id: str) -> AccountCluster | None:
    return session.scalars(
        select(AccountCluster).where(AccountCluster.account_owner_id == account_id)
    ).one_or_none()


def insert_assignment(
    session: Session, account_id: str, cluster_id: uuid.UUID, assigned_by: str | None
) -> AccountCluster:
    row = AccountCluster(
        account_owner_id=account_id,
        hopsworks_cluster_id=cluster_id,
        assigned_by=assigned_by,
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    return row


def move_assignment(
    session: Session, account_id: str, cluster_id: uuid.UUID, assigned_by: str | None
) -> None:
    session.execute(
        update(AccountCluster)
        .where(AccountCluster.account_owner_id == account_id)
        .values(hopsworks_cluster_id=cluster_id, assigned_by=assigned_by, assigned_at=text("now()"))
    )


def count_drift(session: Session) -> list[tuple[uuid.UUID, int, int]]:
    """(cluster, stored current_users, real count) where they differ."""
    rows = session.execute(
        text(
            "SELECT c.id, c.current_users, count(a.account_owner_id) AS real "
            "FROM hopsworks_clusters c LEFT JOIN account_clusters a "
            "ON a.hopsworks_cluster_id = c.id GROUP BY c.id "
            "HAVING c.current_users <> count(a.account_owner_id)"
        )
    )
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def all_secrets_for_update(
    session: Session,
) -> list[tuple[uuid.UUID, str, str | None, str | None, str | None]]:
    """(id, api_key, kubeconfig, auth_api_key, prometheus_auth) ciphertexts of every
    cluster, locked."""
    rows = session.execute(
        text(
            "SELECT id, api_key, kubeconfig, auth_api_key, prometheus_auth "
            "FROM hopsworks_clusters ORDER BY id FOR UPDATE"
        )
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def store_secrets(
    session: Session, cluster_id: uuid.UUID, api_key: str, kubeconfig: str | None,
    auth_api_key: str | None, prometheus_auth: str | None,
) -> None:
    session.execute(
        text(
            "UPDATE hopsworks_clusters SET api_key = :k, kubeconfig = :c, auth_api_key = :a, "
            "prometheus_auth = :p WHERE id = :id"
        ),
        {"k": api_key, "c": kubeconfig, "a": auth_api_key, "p": prometheus_auth,
         "id": cluster_id},
    )


# -- signing keys hopsplane made on clusters (Hopsworks cannot list them) ------------------

def record_signing_key(session: Session, cluster_id: uuid.UUID, key_name: str) -> None:
    session.execute(
        text("INSERT INTO hopsplane.hopsworks_signing_keys (key_name, cluster_id) "
             "VALUES (:k, :c) ON CONFLICT (key_name) DO NOTHING"),
        {"k": key_name, "c": cluster_id},
    )


def forget_signing_key(session: Session, key_name: str) -> None:
    session.execute(text("DELETE FROM hopsplane.hopsworks_signing_keys WHERE key_name = :k"),
                    {"k": key_name})


def signing_keys_older_than(
    session: Session, cluster_id: uuid.UUID, before: datetime, *, limit: int = 500
) -> list[str]:
    rows = session.execute(
        text("SELECT key_name FROM hopsplane.hopsworks_signing_keys "
             "WHERE cluster_id = :c AND created_at < :t ORDER BY created_at LIMIT :n"),
        {"c": cluster_id, "t": before, "n": limit},
    )
    return [r[0] for r in rows]


def forget_project(session: Session, user_id: str) -> None:
    """The account's saved project no longer exists on its cluster: provisioning makes it
    again."""
    session.execute(
        text("UPDATE users SET hopsworks_project_id = NULL, metadata = metadata "
             "- 'hopsworks_project_name' - 'hopsworks_namespace' WHERE id = :id"),
        {"id": user_id},
    )


def merge_cluster_metadata(
    session: Session, cluster_id: uuid.UUID, values: dict[str, Any], drop: tuple[str, ...] = ()
) -> None:
    """Set ``values`` and remove the keys ``drop`` in a cluster's metadata."""
    session.execute(
        text(
            "UPDATE hopsworks_clusters SET metadata = (metadata - CAST(:drop AS text[])) "
            "|| CAST(:v AS jsonb) WHERE id = :id"
        ),
        {"v": _json(values), "drop": list(drop), "id": cluster_id},
    )


# -- what suspensions stopped ---------------------------------------------------------------

def record_stopped(session: Session, rows: list[dict[str, Any]]) -> int:
    """Record stopped workloads; a workload already recorded for the suspension is skipped."""
    if not rows:
        return 0
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        text(
            "INSERT INTO hopsplane.stopped_workloads (account_owner_id, cluster_id, "
            "project_id, suspension, kind, ref, name, hopsworks_user) VALUES (:account_owner_id, "
            ":cluster_id, :project_id, :suspension, :kind, :ref, :name, :hopsworks_user) "
            "ON CONFLICT ON CONSTRAINT stopped_workloads_once DO NOTHING"
        ),
        rows,
    )
    return int(result.rowcount or 0)


def stopped_workloads(
    session: Session, account_id: str, *, limit: int
) -> list[StoppedWorkload]:
    return list(
        session.scalars(
            select(StoppedWorkload)
            .where(StoppedWorkload.account_owner_id == account_id)
            .order_by(StoppedWorkload.stopped_at.desc(), StoppedWorkload.id.desc())
            .limit(limit)
        )
    )


# -- users (the Hopsworks columns) ------------------------------------------------------


def get_user(session: Session, user_id: str, *, lock: bool = False) -> User | None:
    stmt = select(User).where(User.id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def members_of(session: Session, account_id: str) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.account_owner_id == account_id).order_by(User.id)
        )
    )


def merge_user_metadata(session: Session, user_id: str, values: dict[str, Any]) -> None:
    session.execute(
        text("UPDATE users SET metadata = metadata || CAST(:v AS jsonb) WHERE id = :id"),
        {"v": _json(values), "id": user_id},
    )


def save_hopsworks_user(
    session: Session, user_id: str, username: str, cluster_id: uuid.UUID, hopsworks_user_id: int
) -> None:
    session.execute(
        text(
            "UPDATE users SET hopsworks_username = :u, metadata = metadata || "
            "jsonb_build_object('hopsworks_cluster_id', CAST(:c AS text), "
            "'hopsworks_user_id', CAST(:hid AS integer)) WHERE id = :id"
        ),
        {"u": username, "c": str(cluster_id), "hid": hopsworks_user_id, "id": user_id},
    )


def save_project(
    session: Session, user_id: str, project_id: int, project_name: str, namespace: str
) -> None:
    session.execute(
        text(
            "UPDATE users SET hopsworks_project_id = :p, metadata = metadata || "
            "jsonb_build_object('hopsworks_project_name', CAST(:n AS text), "
            "'hopsworks_namespace', CAST(:ns AS text)) WHERE id = :id"
        ),
        {"p": project_id, "n": project_name, "ns": namespace, "id": user_id},
    )


def project_of(session: Session, account_id: str) -> tuple[int | None, str | None]:
    """(id, name) of the account's Hopsworks project, as provisioning saved it."""
    row = session.execute(text(
        "SELECT hopsworks_project_id, metadata ->> 'hopsworks_project_name' AS name "
        "FROM users WHERE id = :id"), {"id": account_id}).first()
    return (row.hopsworks_project_id, row.name) if row is not None else (None, None)


def unprovisioned(session: Session) -> list[tuple[str, bool]]:
    """(user id, is member) of users on a cluster whose Hopsworks side is not complete:
    owners without a user or project, members without a user or not yet in their project
    (the one the owner assigned, else the owner's). Clusters with an operator error are
    left alone until an operator fixes them."""
    rows = session.execute(
        text(
            "SELECT u.id, u.is_member FROM users u JOIN account_clusters a "
            "ON a.account_owner_id = COALESCE(u.account_owner_id, u.id) "
            "JOIN hopsworks_clusters c ON c.id = a.hopsworks_cluster_id "
            "LEFT JOIN users o ON o.id = u.account_owner_id "
            "WHERE c.metadata->>'operator_error' IS NULL AND ("
            "u.hopsworks_username IS NULL "
            "OR u.metadata->>'hopsworks_cluster_id' IS DISTINCT FROM "
            "   CAST(a.hopsworks_cluster_id AS text) "
            "OR (NOT u.is_member AND u.hopsworks_project_id IS NULL) "
            "OR (u.is_member AND o.hopsworks_project_id IS NOT NULL "
            "    AND u.metadata->>'hopsworks_member_of' IS DISTINCT FROM "
            "        CAST(COALESCE(u.hopsworks_project_id, o.hopsworks_project_id) AS text))"
            ") ORDER BY u.id"
        )
    )
    return [(r[0], bool(r[1])) for r in rows]


def _json(values: dict[str, Any]) -> str:
    import json

    return json.dumps(values)


def delete_assignment(session: Session, account_id: str) -> None:
    session.execute(
        delete(AccountCluster).where(AccountCluster.account_owner_id == account_id)
    )


# -- enforcement: who must have nothing running, and who is on a cluster ------------------


def accounts_to_sweep(session: Session) -> list[tuple[str, str | None, str]]:
    """(account owner id, member id or None, id of the stop) of every suspended account
    with a project, and every member over an enforced budget, on a cluster without an
    operator error: what the periodic sweep keeps stopped."""
    rows = session.execute(
        text(
            "SELECT COALESCE(u.account_owner_id, u.id) AS owner, "
            "       CASE WHEN u.account_owner_id IS NOT NULL THEN u.id END AS member, "
            "       CASE WHEN u.account_owner_id IS NULL "
            "            THEN u.metadata ->> 'hopsworks_suspension' "
            "            ELSE COALESCE(u.metadata ->> 'hopsworks_budget_stop', "
            "                          'budget:' || u.id) END AS stop "
            "FROM users u JOIN account_clusters a "
            "  ON a.account_owner_id = COALESCE(u.account_owner_id, u.id) "
            "JOIN hopsworks_clusters c ON c.id = a.hopsworks_cluster_id "
            "WHERE c.metadata ->> 'operator_error' IS NULL AND c.status <> 'disabled' "
            "AND ((u.account_owner_id IS NULL AND u.hopsworks_project_id IS NOT NULL "
            "      AND (u.metadata ->> 'hopsworks_suspended')::boolean) "
            "  OR (u.account_owner_id IS NOT NULL AND u.hopsworks_username IS NOT NULL "
            "      AND (u.metadata ->> 'hopsworks_budget_stopped')::boolean)) "
            "ORDER BY 1, 2 NULLS FIRST"
        )
    )
    return [(r.owner, r.member, r.stop or "") for r in rows]


def users_on_cluster(session: Session, cluster_id: uuid.UUID) -> list[User]:
    """Every user (owner or member) whose Hopsworks user hopsplane made on the cluster."""
    return list(session.scalars(
        select(User).where(
            text("users.metadata ->> 'hopsworks_cluster_id' = :c "
                 "AND users.metadata ? 'hopsworks_user_id'").bindparams(c=str(cluster_id))
        ).order_by(User.id)
    ))


def clusters_to_audit(session: Session) -> list[uuid.UUID]:
    """Clusters with at least one account, not disabled, without an operator error."""
    rows = session.execute(text(
        "SELECT c.id FROM hopsworks_clusters c WHERE c.status <> 'disabled' "
        "AND c.metadata ->> 'operator_error' IS NULL "
        "AND EXISTS (SELECT 1 FROM account_clusters a WHERE a.hopsworks_cluster_id = c.id) "
        "ORDER BY c.id"))
    return [r[0] for r in rows]
