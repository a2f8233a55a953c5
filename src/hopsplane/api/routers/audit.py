"""The audit log: an account's (owner and organization admins) and every account's
(platform admins), newest first, filtered, paged by cursor, or as CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from hopsplane.api.errors import error_responses
from hopsplane.audit import service as audit
from hopsplane.audit.actors import ActorKind
from hopsplane.audit.schemas import AuditEntryOut
from hopsplane.http import exports
from hopsplane.http.deps import AdminDep, SessionDep, TeamDep
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, SeqCursor

router = APIRouter(tags=["audit"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Entries per page.")]
Cursor = Annotated[
    SeqCursor | None, Query(description="`next_cursor` of the previous page; omit for the newest.")
]
Action = Annotated[str | None, Query(
    max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)*\.?$",
    description="An action (`credits.grant`), or a prefix ending in a dot (`teams.`).")]
Kind = Annotated[ActorKind | None, Query(description="Only this kind of actor.")]
Since = Annotated[datetime | None, Query(
    description="Entries at or after this time (UTC when it names no zone).")]
Until = Annotated[datetime | None, Query(
    description="Entries before this time (UTC when it names no zone).")]
AccountFilter = Annotated[str | None, Query(max_length=200, description="One account's id.")]

_CSV: dict[int | str, dict[str, object]] = {
    200: {"description": "CSV, one snapshot.", "content": {"text/csv": {}}}}


def _filters(action: str | None, actor_kind: str | None, since: datetime | None,
             until: datetime | None) -> dict[str, Any]:
    """A time without a zone is UTC, as every time of this API."""
    since, until = (None if w is None else w if w.tzinfo else w.replace(tzinfo=UTC)
                    for w in (since, until))
    return {"action": action, "actor_kind": actor_kind, "since": since, "until": until}


def _page(session: SessionDep, account_id: str | None, filters: dict[str, Any], limit: int,
          cursor: str | None) -> Page[AuditEntryOut]:
    items = audit.entries(session, account_id=account_id, limit=limit,
                          before_id=int(cursor) if cursor else None, **filters)
    more = len(items) == limit
    return Page[AuditEntryOut](items=items, next_cursor=str(items[-1].id) if more else None)


@router.get("/v1/account/audit", response_model=Page[AuditEntryOut],
            responses=error_responses(401, 403, 422))
def account_audit(
    principal: TeamDep, session: SessionDep, action: Action = None, actor_kind: Kind = None,
    since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[AuditEntryOut]:
    """Who decided what in the account (roles, invites, budgets, auto top-up, credit,
    suspensions, cluster, API keys), before and after, newest first."""
    return _page(session, principal.account_id, _filters(action, actor_kind, since, until),
                 limit, cursor)


@router.get("/v1/account/audit.csv", response_class=StreamingResponse,
            responses={**_CSV, **error_responses(401, 403, 422)})
def account_audit_csv(
    request: Request, principal: TeamDep, action: Action = None, actor_kind: Kind = None,
    since: Since = None, until: Until = None,
) -> Response:
    """The entries of `GET /v1/account/audit` with the same filters, as CSV (`before` and
    `after` as JSON text), newest first, one snapshot."""
    return exports.audit_csv(request, principal.account_id,
                             _filters(action, actor_kind, since, until))


@router.get("/v1/admin/audit", response_model=Page[AuditEntryOut],
            responses=error_responses(401, 403, 422))
def admin_audit(
    principal: AdminDep, session: SessionDep, account_id: AccountFilter = None,
    action: Action = None, actor_kind: Kind = None, since: Since = None, until: Until = None,
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
) -> Page[AuditEntryOut]:
    """The whole audit log (or one account's), newest first; platform admins only."""
    return _page(session, account_id, _filters(action, actor_kind, since, until), limit,
                 cursor)


@router.get("/v1/admin/audit.csv", response_class=StreamingResponse,
            responses={**_CSV, **error_responses(401, 403, 422)})
def admin_audit_csv(
    request: Request, principal: AdminDep, account_id: AccountFilter = None,
    action: Action = None, actor_kind: Kind = None, since: Since = None, until: Until = None,
) -> Response:
    """`GET /v1/admin/audit` as CSV."""
    return exports.audit_csv(request, account_id, _filters(action, actor_kind, since, until))
