"""The account's API keys: create (the secret is in this one answer), list, revoke.

For the account owner and organization admins (``TeamDep``); never for an API key."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from hopsplane.api.errors import error_responses
from hopsplane.apikeys import service as api_keys
from hopsplane.apikeys.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut
from hopsplane.http.deps import SessionDep, TeamDep

router = APIRouter(prefix="/v1/account/api-keys", tags=["api-keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated,
             responses=error_responses(401, 403, 409, 422))
def create_key(principal: TeamDep, session: SessionDep, body: ApiKeyIn) -> ApiKeyCreated:
    """A new key for the account, with a name, scopes and a lifetime (1 to 366 days).
    `secret` is shown in this answer only; keep it where your program reads it and send it
    as `Authorization: Bearer <secret>`. At most 50 live keys per account (409)."""
    return api_keys.create(session, principal.account_id, principal.user_id, body)


@router.get("", response_model=list[ApiKeyOut], responses=error_responses(401, 403))
def list_keys(principal: TeamDep, session: SessionDep) -> list[ApiKeyOut]:
    """The account's keys, newest first, revoked and expired ones too; never a secret."""
    return api_keys.list_keys(session, principal.account_id)


@router.delete("/{key_id}", response_model=ApiKeyOut,
               responses=error_responses(401, 403, 404, 422))
def revoke_key(principal: TeamDep, session: SessionDep, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke a key: it stops working at once. Revoking it again answers it as it is."""
    return api_keys.revoke(session, principal.account_id, key_id)
