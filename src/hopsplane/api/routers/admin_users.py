"""/v1/admin/users: every user, for platform admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import UserSummary
from hopsplane.api.errors import error_responses
from hopsplane.http.deps import AdminDep, SessionDep
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, time_cursor, time_page

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]


@router.get(
    "/users", response_model=Page[UserSummary], responses=error_responses(401, 403, 422, 503)
)
def list_users(
    principal: AdminDep, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[UserSummary]:
    """Every user of the platform, newest first."""
    return time_page(accounts.list_users(session, limit=limit, after=time_cursor(cursor)), limit)


@router.get(
    "/users/{user_id}", response_model=UserSummary,
    responses=error_responses(401, 403, 404, 422, 503),
)
def get_user(principal: AdminDep, session: SessionDep, user_id: str) -> UserSummary:
    """One user, whatever account they belong to."""
    return accounts.get_user(session, user_id)
