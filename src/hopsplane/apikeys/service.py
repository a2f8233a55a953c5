"""Create, list, revoke and authenticate API keys.

A key acts for one account (the owner's id), with the scopes it was given, until it
expires or is revoked. It authenticates only while that account still exists as an
account (its owner has not joined another team)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from hopsplane.apikeys import repository as repo
from hopsplane.apikeys import rules
from hopsplane.apikeys.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, KeyIdentity
from hopsplane.audit import service as audit
from hopsplane.db.models import ApiKey
from hopsplane.errors import Conflict, NotFound, Unauthorized

MAX_LIVE_KEYS = 50


def create(session: Session, account_id: str, created_by: str, wanted: ApiKeyIn) -> ApiKeyCreated:
    """A new key; its secret is in the answer and nowhere else."""
    live = [k for k in repo.of_account(session, account_id) if k.revoked_at is None]
    if len(live) >= MAX_LIVE_KEYS:
        raise Conflict(f"an account holds at most {MAX_LIVE_KEYS} keys: revoke one first")
    secret = rules.new_key()
    scopes = sorted({s.value for s in wanted.scopes})
    key = repo.insert(
        session, account_id=account_id, name=wanted.name, token_sha256=rules.digest(secret),
        display_prefix=rules.display_prefix(secret), scopes=scopes, created_by=created_by,
        lifetime_days=wanted.expires_in_days,
    )
    audit.record(session, "api_keys.created", account_id=account_id, target=f"api_key:{key.id}",
                 after=_audited(key))
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), secret=secret)


def list_keys(session: Session, account_id: str) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in repo.of_account(session, account_id)]


def revoke(session: Session, account_id: str, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke a key of the account (404 for any other account's key, as if it did not
    exist). Revoking a revoked key changes nothing and answers it as it is."""
    key = repo.get_for_update(session, account_id, key_id)
    if key is None:
        raise NotFound("no such API key in this account")
    if key.revoked_at is None:
        before = _audited(key)
        repo.revoke(session, key_id)
        key = session.get_one(ApiKey, key_id)
        audit.record(session, "api_keys.revoked", account_id=account_id,
                     target=f"api_key:{key_id}", before=before, after=_audited(key))
    return ApiKeyOut.model_validate(key)


def authenticate(session: Session, token: str) -> KeyIdentity:
    """The live key a bearer token is, or Unauthorized (malformed, unknown, expired,
    revoked, or its account is gone), all with one answer so a caller learns nothing of
    which."""
    if not rules.well_formed(token):
        raise Unauthorized("this API key is malformed: copy the whole key, `hpk_live_…`")
    key = repo.live_by_digest(session, rules.digest(token))
    if key is None:
        raise Unauthorized("this API key is unknown, expired or revoked")
    repo.touch(session, key.id)
    return KeyIdentity(key_id=key.id, account_owner_id=key.account_owner_id,
                       scopes=frozenset(key.scopes))


def _audited(key: ApiKey) -> dict[str, object]:
    return {"name": key.name, "scopes": list(key.scopes), "expires_at": key.expires_at,
            "revoked_at": key.revoked_at, "display_prefix": key.display_prefix}
