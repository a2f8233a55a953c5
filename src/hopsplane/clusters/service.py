"""Use cases of the clusters domain. Functions take the session first and never commit."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hopsplane.audit import service as audit
from hopsplane.clusters import repository as repo
from hopsplane.clusters import tasks
from hopsplane.clusters.rules import (
    OPERATOR_ERROR_KEY,
    PROJECT_SERVICES_KEY,
    PROMETHEUS_URL_KEY,
    STRAY_PROJECTS_KEY,
    ClusterStatus,
    project_services,
    validate_http_url,
    validate_max_users,
    validate_name,
    validate_secret,
    validate_services,
)
from hopsplane.clusters.schemas import (
    AssignmentOut,
    ClusterCreate,
    ClusterOut,
    ClusterSecrets,
    ClusterUpdate,
    PrometheusConnection,
    StoppedWorkloadOut,
    StrayProjectOut,
)
from hopsplane.crypto import SecretBox
from hopsplane.db.models import HopsworksCluster
from hopsplane.errors import Conflict, Invalid, NotFound, Unavailable
from hopsplane.integrations.hopsworks import HopsworksProject
from hopsplane.integrations.tls import validate_ca_bundle

PROMETHEUS_AUTH_KIND_KEY = "prometheus_auth"  # metadata: "bearer" | "basic" (never the secret)

MAX_PAGE = 500


def to_out(cluster: HopsworksCluster) -> ClusterOut:
    metadata = dict(cluster.metadata_ or {})
    return ClusterOut(
        id=cluster.id,
        name=cluster.name,
        api_url=cluster.api_url,
        status=cluster.status,
        max_users=cluster.max_users,
        current_users=cluster.current_users,
        free_capacity=max(cluster.max_users - cluster.current_users, 0),
        has_kubeconfig=cluster.kubeconfig is not None,
        has_auth_api_key=cluster.auth_api_key is not None,
        project_services=project_services(metadata),
        operator_error=metadata.get(OPERATOR_ERROR_KEY),
        prometheus_url=metadata.get(PROMETHEUS_URL_KEY),
        has_ca_bundle=cluster.ca_bundle is not None,
        has_prometheus_ca_bundle=cluster.prometheus_ca_bundle is not None,
        prometheus_auth=metadata.get(PROMETHEUS_AUTH_KIND_KEY) if cluster.prometheus_auth
        else None,
        metadata=metadata,
    )


def _prometheus_auth(
    box: SecretBox, bearer: SecretStr | None, username: str | None, password: SecretStr | None,
) -> tuple[str | None, str | None] | None:
    """(kind, ciphertext) of the Prometheus credentials given, (None, None) to remove them
    (an empty bearer token), None when none were given."""
    if bearer is not None:
        token = bearer.get_secret_value().strip()
        if not token:
            return None, None
        return "bearer", box.encrypt(json.dumps({"bearer": token}))
    if username is None and password is None:
        return None
    if not username or not username.strip() or password is None \
            or not password.get_secret_value():
        raise Invalid("Prometheus basic auth needs both prometheus_username and "
                      "prometheus_password")
    return "basic", box.encrypt(json.dumps(
        {"username": username.strip(), "password": password.get_secret_value()}))


def _bundle(value: str | None, what: str) -> str | None:
    return validate_ca_bundle(value, what) if value else None


def register_cluster(session: Session, box: SecretBox, data: ClusterCreate) -> ClusterOut:
    metadata: dict[str, Any] = dict(data.metadata)
    metadata.pop(OPERATOR_ERROR_KEY, None)
    if data.prometheus_url:
        metadata[PROMETHEUS_URL_KEY] = validate_http_url(data.prometheus_url, "prometheus_url")
    metadata[PROJECT_SERVICES_KEY] = validate_services(data.project_services)
    kubeconfig = data.kubeconfig.get_secret_value() if data.kubeconfig else None
    kind, prometheus_auth = _prometheus_auth(
        box, data.prometheus_bearer_token, data.prometheus_username, data.prometheus_password,
    ) or (None, None)
    if kind:
        metadata[PROMETHEUS_AUTH_KIND_KEY] = kind
    cluster = _guarded(session, lambda: repo.insert_cluster(
        session,
        name=validate_name(data.name),
        api_url=validate_http_url(data.api_url, "api_url"),
        api_key=box.encrypt(validate_secret(data.api_key.get_secret_value(), "api_key")),
        auth_api_key=_encrypted_key(box, data.auth_api_key),
        kubeconfig=box.encrypt(validate_secret(kubeconfig, "kubeconfig", strip=False))
        if kubeconfig
        else None,
        max_users=validate_max_users(data.max_users),
        status=ClusterStatus.ACTIVE.value,
        ca_bundle=_bundle(data.ca_bundle, "ca_bundle"),
        prometheus_ca_bundle=_bundle(data.prometheus_ca_bundle, "prometheus_ca_bundle"),
        prometheus_auth=prometheus_auth,
        metadata_=metadata,
    ))
    return to_out(cluster)


def get_cluster(session: Session, cluster_id: uuid.UUID) -> ClusterOut:
    return to_out(_require(session, cluster_id))


def find_cluster(session: Session, id_or_name: str) -> ClusterOut:
    """A cluster by id or by name (names are unique whatever their case): what an
    operator has at hand."""
    wanted = id_or_name.strip()
    if not wanted:
        raise Invalid("type a cluster name or id (`hopsplane clusters list` shows both)")
    cluster = repo.get_cluster_by_name(session, wanted)
    if cluster is None:
        try:
            cluster = repo.get_cluster(session, uuid.UUID(wanted))
        except ValueError:
            cluster = None
    if cluster is None:
        raise NotFound(
            f"no cluster named {wanted!r} or with that id (`hopsplane clusters list` shows "
            "every cluster)"
        )
    return to_out(cluster)


def list_clusters(
    session: Session, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[ClusterOut], str | None]:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
    rows = repo.list_clusters(session, limit=limit + 1, after=_decode_cursor(cursor))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].name, rows[-1].id) if more and rows else None
    return [to_out(r) for r in rows], next_cursor


def update_cluster(
    session: Session, box: SecretBox, cluster_id: uuid.UUID, data: ClusterUpdate
) -> ClusterOut:
    cluster = _require(session, cluster_id, lock=True)
    values: dict[str, Any] = {}
    if data.name is not None:
        values["name"] = validate_name(data.name)
    if data.api_url is not None:
        values["api_url"] = validate_http_url(data.api_url, "api_url")
    if data.api_key is not None:
        values["api_key"] = box.encrypt(validate_secret(data.api_key.get_secret_value(), "api_key"))
    if data.auth_api_key is not None:
        values["auth_api_key"] = _encrypted_key(box, data.auth_api_key)
    if data.kubeconfig is not None:
        values["kubeconfig"] = box.encrypt(
            validate_secret(data.kubeconfig.get_secret_value(), "kubeconfig", strip=False)
        )
    if data.max_users is not None:
        max_users = validate_max_users(data.max_users)
        if max_users < cluster.current_users:
            raise Conflict(
                f"cluster {cluster.name} holds {cluster.current_users} accounts; max_users "
                f"cannot go below that (drain it and move accounts away first)"
            )
        values["max_users"] = max_users
    metadata = dict(cluster.metadata_ or {})
    if data.prometheus_url is not None:
        if data.prometheus_url.strip():
            metadata[PROMETHEUS_URL_KEY] = validate_http_url(data.prometheus_url, "prometheus_url")
        else:
            metadata.pop(PROMETHEUS_URL_KEY, None)
    if data.project_services is not None:
        metadata[PROJECT_SERVICES_KEY] = validate_services(data.project_services)
    if data.ca_bundle is not None:
        values["ca_bundle"] = _bundle(data.ca_bundle.strip(), "ca_bundle")
    if data.prometheus_ca_bundle is not None:
        values["prometheus_ca_bundle"] = _bundle(data.prometheus_ca_bundle.strip(),
                                                 "prometheus_ca_bundle")
    auth = _prometheus_auth(box, data.prometheus_bearer_token, data.prometheus_username,
                            data.prometheus_password)
    if auth is not None:
        kind, values["prometheus_auth"] = auth
        if kind:
            metadata[PROMETHEUS_AUTH_KIND_KEY] = kind
        else:
            metadata.pop(PROMETHEUS_AUTH_KIND_KEY, None)
    if not values and data.prometheus_url is None and data.project_services is None:
        raise Invalid("nothing to update")
    # a change of URL, keys or trust is what an operator does to fix an operator error
    if {"api_url", "api_key", "auth_api_key", "ca_bundle"} & values.keys():
        metadata.pop(OPERATOR_ERROR_KEY, None)
    values["metadata_"] = metadata
    return to_out(_guarded(session, lambda: repo.update_cluster(session, cluster, **values)))


def set_status(session: Session, cluster_id: uuid.UUID, status: ClusterStatus) -> ClusterOut:
    """active: takes new accounts; draining: keeps its accounts, takes no new ones;
    disabled: takes nothing (its accounts stay assigned until moved by hand)."""
    cluster = _require(session, cluster_id, lock=True)
    before = {"status": cluster.status}
    out = to_out(repo.update_cluster(session, cluster, status=status.value))
    audit.record(session, "clusters.status_set", account_id=None,  # platform-wide
                 target=f"cluster:{cluster_id}", before=before, after={"status": status})
    return out


def assign_account(
    session: Session, account_id: str, *, assigned_by: str | None = None
) -> AssignmentOut:
    """Place an account on the active cluster with the most free capacity.

    Idempotent: an account that already has a cluster keeps it. Concurrent placements
    serialise on the locks of the active cluster rows (taken in id order), so a cluster is
    never overfilled; the CHECK current_users <= max_users backs this up. No room anywhere
    is Unavailable."""
    _require_owner(session, account_id)
    existing = repo.assignment_of(session, account_id)
    if existing is not None:
        return AssignmentOut.model_validate(existing)
    tasks.enqueue_owner_provisioning(session, account_id)  # outside the locks
    row = _guarded(session, lambda: repo.place_on_emptiest(session, account_id, assigned_by))
    if row is None:
        raise Unavailable(
            "no active Hopsworks cluster has free capacity; register a cluster or raise "
            "max_users (`hopsplane clusters add|update`)"
        )
    placed = AssignmentOut.model_validate(row._mapping)
    audit.record(session, "clusters.assigned", account_id=account_id, target="cluster",
                 after={"cluster_id": placed.hopsworks_cluster_id, "assigned_by": assigned_by})
    return placed


def move_account(
    session: Session, account_id: str, cluster_id: uuid.UUID, *, assigned_by: str
) -> AssignmentOut:
    """Assign or move an account to ``cluster_id`` by hand (recorded in assigned_by). The
    target must be active or draining (an admin may fill a draining cluster on purpose)
    and have room. The account's Hopsworks users are provisioned on the new cluster."""
    _require_owner(session, account_id)
    existing = repo.assignment_of(session, account_id)
    before = None if existing is None else {"cluster_id": existing.hopsworks_cluster_id,
                                            "assigned_by": existing.assigned_by}
    # Lock the old and the new cluster together, in id order, before the trigger updates
    # their counts: the same order as placements, so no deadlock.
    involved = {cluster_id} | ({existing.hopsworks_cluster_id} if existing else set())
    repo.lock_clusters(session, sorted(involved))
    target = _require(session, cluster_id)
    session.refresh(target)
    if target.status == ClusterStatus.DISABLED:
        raise Conflict(f"cluster {target.name} is disabled")
    if existing is not None and existing.hopsworks_cluster_id == cluster_id:
        # Already there: nothing moves, but the placement is now this person's decision
        # (an automatic placement confirmed by hand is a placement by hand).
        if existing.assigned_by != assigned_by:
            existing.assigned_by = assigned_by
            session.flush()
            audit.record(session, "clusters.assigned", account_id=account_id,
                         target="cluster", before=before,
                         after={"cluster_id": cluster_id, "assigned_by": assigned_by})
        return AssignmentOut.model_validate(existing)
    if target.current_users >= target.max_users:
        raise Conflict(f"cluster {target.name} is full ({target.current_users}/{target.max_users})")
    if existing is None:
        _guarded(
            session,
            lambda: repo.insert_assignment(session, account_id, cluster_id, assigned_by),
        )
    else:
        _guarded(
            session,
            lambda: repo.move_assignment(session, account_id, cluster_id, assigned_by),
        )
    tasks.enqueue_owner_provisioning(session, account_id)
    for member in repo.members_of(session, account_id):
        tasks.enqueue_member_provisioning(session, member.id, account_id)
    row = repo.assignment_of(session, account_id)
    session.refresh(row)
    audit.record(session, "clusters.assigned", account_id=account_id, target="cluster",
                 before=before, after={"cluster_id": cluster_id, "assigned_by": assigned_by})
    return AssignmentOut.model_validate(row)


def assignment(session: Session, account_id: str) -> AssignmentOut | None:
    row = repo.assignment_of(session, account_id)
    return None if row is None else AssignmentOut.model_validate(row)


def connection(session: Session, box: SecretBox, cluster_id: uuid.UUID) -> ClusterSecrets:
    """Decrypted connection details of a cluster, for the worker (never rendered)."""
    cluster = _require(session, cluster_id)
    auth = cluster.auth_api_key
    return ClusterSecrets(
        id=cluster.id, api_url=cluster.api_url, api_key=SecretStr(box.decrypt(cluster.api_key)),
        auth_api_key=SecretStr(box.decrypt(auth)) if auth is not None else None,
        ca_bundle=cluster.ca_bundle,
    )


def prometheus_connection(
    session: Session, box: SecretBox, cluster_id: uuid.UUID
) -> PrometheusConnection | None:
    """How to reach the cluster's Prometheus (decrypted, never rendered); None when it has
    no ``prometheus_url``."""
    cluster = _require(session, cluster_id)
    url = (cluster.metadata_ or {}).get(PROMETHEUS_URL_KEY)
    if not isinstance(url, str) or not url:
        return None
    secret: dict[str, Any] = (json.loads(box.decrypt(cluster.prometheus_auth))
                              if cluster.prometheus_auth else {})
    return PrometheusConnection(
        url=url, ca_bundle=cluster.prometheus_ca_bundle,
        bearer_token=SecretStr(secret["bearer"]) if secret.get("bearer") else None,
        username=secret.get("username"),
        password=SecretStr(secret["password"]) if secret.get("password") else None,
    )


def rotate_secrets(session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored cluster secret (both API keys, the kubeconfig, the
    Prometheus credentials) under the first configured key. Returns how many clusters were
    rewritten. Fails (and changes nothing) if any secret cannot be decrypted with the
    configured keys."""
    rows = repo.all_secrets_for_update(session)
    for cluster_id, api_key, kubeconfig, auth_api_key, prometheus_auth in rows:
        repo.store_secrets(
            session,
            cluster_id,
            box.rotate(api_key),
            box.rotate(kubeconfig) if kubeconfig is not None else None,
            box.rotate(auth_api_key) if auth_api_key is not None else None,
            box.rotate(prometheus_auth) if prometheus_auth is not None else None,
        )
    return len(rows)


def report_operator_error(session: Session, cluster_id: uuid.UUID, message: str) -> None:
    """Record what an operator must fix on the cluster (shown with the cluster); provisioning
    of its accounts waits until a `clusters update` clears it."""
    repo.merge_cluster_metadata(session, cluster_id, {OPERATOR_ERROR_KEY: message})


def clear_operator_error(session: Session, cluster_id: uuid.UUID) -> None:
    repo.merge_cluster_metadata(session, cluster_id, {}, drop=(OPERATOR_ERROR_KEY,))


MAX_STOPPED = 200


def project_name(session: Session, account_id: str, project_id: int | None) -> str | None:
    """The name of the account's Hopsworks project when ``project_id`` is it (what a
    customer sees in Hopsworks), else None."""
    if project_id is None:
        return None
    known_id, name = repo.project_of(session, account_id)
    return name if known_id == project_id else None


def stopped_workloads(session: Session, account_id: str) -> list[StoppedWorkloadOut]:
    """What suspensions of the account stopped, newest first (the owner restarts by hand)."""
    return [
        StoppedWorkloadOut.model_validate(r)
        for r in repo.stopped_workloads(session, account_id, limit=MAX_STOPPED)
    ]


def find_stray_projects(
    session: Session, cluster_id: uuid.UUID, projects: list[HopsworksProject]
) -> dict[str, list[StrayProjectOut]]:
    """Account owner id -> the projects of ``projects`` (the cluster's, listed with their
    creator) that a user of the account owns and that are not the account's project nor
    a project a member was assigned to."""
    users = repo.users_on_cluster(session, cluster_id)
    account_of = {str(u.hopsworks_username): u.account_owner_id or u.id
                  for u in users if u.hopsworks_username}
    known = {u.hopsworks_project_id for u in users if u.hopsworks_project_id is not None}
    found: dict[str, list[StrayProjectOut]] = {}
    for p in projects:
        if p.creator in account_of and p.id not in known:
            found.setdefault(account_of[p.creator], []).append(StrayProjectOut(
                id=p.id, name=p.name, namespace=p.namespace, creator=p.creator))
    return found


def stray_projects(session: Session, account_id: str) -> list[StrayProjectOut]:
    """The account's stray projects as the last cluster audit found them."""
    owner = repo.get_user(session, account_id)
    listed = (owner.metadata_ or {}).get(STRAY_PROJECTS_KEY) if owner is not None else None
    return [StrayProjectOut.model_validate(p) for p in listed or [] if isinstance(p, dict)]


def count_drift(session: Session) -> list[tuple[uuid.UUID, int, int]]:
    return repo.count_drift(session)


def _encrypted_key(box: SecretBox, key: SecretStr | None) -> str | None:
    if key is None:
        return None
    return box.encrypt(validate_secret(key.get_secret_value(), "auth_api_key"))


def _require(session: Session, cluster_id: uuid.UUID, *, lock: bool = False) -> HopsworksCluster:
    cluster = repo.get_cluster(session, cluster_id, lock=lock)
    if cluster is None:
        raise NotFound(f"no cluster {cluster_id}")
    return cluster


def _require_owner(session: Session, user_id: str) -> None:
    user = repo.get_user(session, user_id)
    if user is None:
        raise NotFound(f"no account {user_id!r}")
    if user.account_owner_id is not None:
        raise Invalid(
            f"{user_id!r} is a team member of {user.account_owner_id!r}; clusters are "
            "assigned to account owners"
        )


def _guarded(session: Session, action: Any) -> Any:
    """Run a write in a savepoint; the database's overfill CHECK becomes a Conflict and
    leaves the caller's transaction usable."""
    try:
        with session.begin_nested():
            return action()
    except IntegrityError as exc:
        if "hopsworks_clusters_not_overfull" in str(exc.orig):
            raise Conflict("the cluster is full") from exc
        if "hopsworks_clusters_name_key" in str(exc.orig):
            raise Conflict(
                "another cluster already has this name (names are unique, ignoring case)",
                code="cluster_name_taken",
            ) from exc
        raise


def _encode_cursor(name: str, cluster_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, str(cluster_id)]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        name, cid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(name), uuid.UUID(cid)
    except (ValueError, TypeError) as exc:
        raise Invalid("cursor is not one this server gave out") from exc
