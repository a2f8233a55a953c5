"""Usage metering over HTTP: event ingestion (admins and cluster agents) and the admin's
view of events that could not be attributed yet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hopsplane.api.errors import error_responses
from hopsplane.db.engine import Database
from hopsplane.errors import Unauthorized
from hopsplane.http.deps import (
    AdminDep,
    SessionDep,
    current_principal,
    database,
    require_admin,
)
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, UnmatchedCursor
from hopsplane.usage import service
from hopsplane.usage.combiner import BatchCombiner
from hopsplane.usage.rules import TOKEN_PREFIX, unmatched_cursor
from hopsplane.usage.schemas import IngestResult, UnmatchedEventOut, UsageBatchIn
from hopsplane.usage.service import Submitter

router = APIRouter(prefix="/v1", tags=["usage"])


def usage_submitter(request: Request, db: Annotated[Database, Depends(database)]) -> Submitter:
    """Guard "platform admin or cluster agent".

    ``Authorization: Bearer hpu_...`` is a cluster's ingestion token (issued with
    ``hopsplane usage issue-token``; only its SHA-256 is stored): the caller is that
    cluster's agent, and its events are stamped with its cluster. Anything else goes
    through the app's authenticator and must be a platform admin.

    It looks the caller up in a short transaction of its own, ended before the batch is
    handed to the group commit: a request waiting for its group holds no connection (else
    enough waiting requests would take every connection of the pool from the group).
    """
    max_age = request.app.state.settings.usage_max_age_days
    with db.transaction() as session:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.startswith(TOKEN_PREFIX):
            cluster_id = service.cluster_for_token(session, credential)
            if cluster_id is None:
                raise Unauthorized("unknown or replaced usage ingestion token")
            return Submitter(cluster_id=cluster_id, max_age_days=max_age)
        principal = require_admin(current_principal(request, session))
        return Submitter(admin_id=principal.user_id, max_age_days=max_age)


AdminOrClusterAgentDep = Annotated[Submitter, Depends(usage_submitter)]


@router.post(
    "/usage/events",
    response_model=IngestResult,
    responses=error_responses(401, 403, 422),
)
def post_usage_events(
    request: Request, batch: UsageBatchIn, submitter: AdminOrClusterAgentDep
) -> IngestResult:
    """Record a batch of usage events (up to 5,000). A repeated event id is accepted and
    ignored; events for unknown accounts or projects are kept and reported as unmatched.
    One invalid event refuses the whole batch (nothing is stored). When it answers, the new
    events are in usage_tracking (committed). Batches that arrive at the same time are
    stored and folded together, each answered with its own counts."""
    combiner: BatchCombiner = request.app.state.usage_combiner
    return service.ingest_grouped(combiner, batch.events, submitter)


@router.get(
    "/admin/usage/unmatched",
    response_model=Page[UnmatchedEventOut],
    responses=error_responses(401, 403, 422),
)
def list_unmatched_usage(
    _admin: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        UnmatchedCursor | None, Query(description="next_cursor of the previous page")
    ] = None,
) -> Page[UnmatchedEventOut]:
    """Events kept but not billed yet (unknown account, project or namespace), by source
    and id."""
    items = service.unmatched(session, limit=limit, after=cursor)
    last = items[-1] if len(items) == limit else None
    next_cursor = unmatched_cursor(last.source, last.event_id) if last else None
    return Page[UnmatchedEventOut](items=items, next_cursor=next_cursor)


@router.post(
    "/admin/usage/refold",
    responses=error_responses(401, 403),
)
def refold_usage(_admin: AdminDep, session: SessionDep) -> dict[str, int]:
    """Fold in the unmatched events whose account can now be resolved."""
    result = service.refold(session)
    return {"folded": result.folded, "still_unmatched": result.still_unmatched}
