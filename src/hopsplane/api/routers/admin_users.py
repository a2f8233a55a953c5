"""/v1/admin/users: every user, for platform admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import UserSummary
from hopsplane.api.errors import error_responses
from hopsplane.fields import CursorText
from hopsplane.http.deps import AdminDep, SessionDep
from hopsplane.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, time_cursor, time_page
from hopsplane.sessions import service as web_sessions

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[CursorText | None, Query()]


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


class SessionsRevoked(BaseModel):
    revoked: int = Field(description="How many live browser sessions were revoked.")


@router.post(
    "/users/{user_id}/sessions/revoke", response_model=SessionsRevoked,
    responses=error_responses(401, 403, 404, 422, 503),
)
def sign_out_everywhere(principal: AdminDep, session: SessionDep, user_id: str) -> SessionsRevoked:
    """Sign a user out everywhere: every browser session of theirs is revoked at once (a
    copied cookie signs nobody in any more). Access tokens are the identity provider's to
    revoke."""
    accounts.get_user(session, user_id)  # 404 for an unknown user
    return SessionsRevoked(revoked=web_sessions.end_all(session, user_id))
