"""/v1/me: the signed-in user's own profile (any role)."""

from __future__ import annotations

from fastapi import APIRouter

from hopsplane.accounts import service as accounts
from hopsplane.accounts.schemas import Profile
from hopsplane.api.errors import error_responses
from hopsplane.http.deps import MemberDep, SessionDep

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.get("/me", response_model=Profile, responses=error_responses(401, 403, 404, 503))
def me(principal: MemberDep, session: SessionDep) -> Profile:
    """Who you are: role, account, assigned Hopsworks project. Creates your account (as an
    owner) on your first request."""
    return accounts.profile(session, principal.user_id, email_verified=principal.email_verified)
