"""Platform admins manage Hopsworks clusters and place accounts on them.

Secrets (API key, kubeconfig) are accepted, encrypted and never returned."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from hopsplane.api.errors import error_responses, with_rules
from hopsplane.clusters import service
from hopsplane.clusters.rules import ClusterStatus
from hopsplane.clusters.schemas import (
    AssignmentIn,
    AssignmentOut,
    ClusterCreate,
    ClusterOut,
    ClusterUpdate,
)
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.fields import CursorText
from hopsplane.http.deps import AdminDep, SessionDep
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/v1/admin/clusters", tags=["clusters"])

_GUARDED = (401, 403)


def secret_box(request: Request) -> SecretBox:
    settings: Settings = request.app.state.settings
    return SecretBox(settings.effective_encryption_keys)


BoxDep = Annotated[SecretBox, Depends(secret_box)]
_CLUSTER_RULES = (
    "a CA bundle whose blocks hold no certificate OpenSSL loads; `prometheus_username` "
    "without `prometheus_password` or the reverse (rules on the content of a PEM and between "
    "two fields, which OpenAPI cannot state)."
)


@router.post(
    "",
    response_model=ClusterOut,
    status_code=status.HTTP_201_CREATED,
    responses=with_rules(error_responses(*_GUARDED, 409, 422,
                                         codes={409: ["cluster_name_taken"]}), _CLUSTER_RULES),
)
def register_cluster(
    body: ClusterCreate, session: SessionDep, admin: AdminDep, box: BoxDep
) -> ClusterOut:
    """Register a cluster (status active). The API key and kubeconfig are stored encrypted."""
    return service.register_cluster(session, box, body)


@router.get("", response_model=Page[ClusterOut], responses=error_responses(*_GUARDED, 422))
def list_clusters(
    session: SessionDep,
    admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[CursorText | None, Query()] = None,
) -> Page[ClusterOut]:
    """Clusters by name, with their capacity (never their secrets)."""
    items, next_cursor = service.list_clusters(session, limit=limit, cursor=cursor)
    return Page[ClusterOut](items=items, next_cursor=next_cursor)


@router.get(
    "/{cluster_id}", response_model=ClusterOut, responses=error_responses(*_GUARDED, 404, 422)
)
def get_cluster(cluster_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> ClusterOut:
    return service.get_cluster(session, cluster_id)


@router.patch(
    "/{cluster_id}",
    response_model=ClusterOut,
    responses=with_rules(error_responses(*_GUARDED, 404, 409, 422), _CLUSTER_RULES),
)
def update_cluster(
    cluster_id: uuid.UUID, body: ClusterUpdate, session: SessionDep, admin: AdminDep, box: BoxDep
) -> ClusterOut:
    """Change name, URL, secrets, capacity or Prometheus URL ("" removes it)."""
    return service.update_cluster(session, box, cluster_id, body)


def _status_route(action: str, new_status: ClusterStatus, doc: str) -> None:
    def change(cluster_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> ClusterOut:
        return service.set_status(session, cluster_id, new_status)

    change.__doc__ = doc
    router.add_api_route(
        f"/{{cluster_id}}/{action}",
        change,
        methods=["POST"],
        response_model=ClusterOut,
        responses=error_responses(*_GUARDED, 404, 422),
        name=f"{action}_cluster",
    )


_status_route("drain", ClusterStatus.DRAINING, "Stop placing new accounts here; they stay.")
_status_route("disable", ClusterStatus.DISABLED, "Out of service: no placements, no moves.")
_status_route("activate", ClusterStatus.ACTIVE, "Put the cluster (back) into service.")


@router.post(
    "/{cluster_id}/accounts",
    response_model=AssignmentOut,
    responses=error_responses(*_GUARDED, 404, 409, 422),
)
def assign_account(
    cluster_id: uuid.UUID, body: AssignmentIn, session: SessionDep, admin: AdminDep
) -> AssignmentOut:
    """Assign an account to this cluster, or move it here, by hand (recorded as assigned
    by the calling admin). Its Hopsworks users are provisioned on this cluster."""
    return service.move_account(
        session, body.account_owner_id, cluster_id, assigned_by=admin.user_id
    )
