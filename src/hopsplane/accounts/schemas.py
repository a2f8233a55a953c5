"""Shapes of accounts, shared by the service, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from hopsplane.accounts.rules import Role


@dataclass(frozen=True, slots=True)
class SignIn:
    """A verified identity, as the identity provider vouches for it."""

    sub: str
    email: str | None
    email_verified: bool
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """The signed-in user as the database knows them."""

    user_id: str
    email: str
    account_owner_id: str | None
    is_platform_admin: bool
    created: bool  # True on the request that created the user


class Profile(BaseModel):
    id: str = Field(description="Auth0 subject of the user.")
    email: str
    name: str | None
    role: Role
    account_owner_id: str | None = Field(
        description="The owner's id for a member; null for an owner."
    )
    account_id: str = Field(
        description="The account the user acts in (their owner's or their own)."
    )
    is_platform_admin: bool
    email_verified: bool = Field(description="As the current sign-in vouches for it.")
    hopsworks_username: str | None
    hopsworks_project_id: int | None
    created_at: datetime
    last_login_at: datetime | None


class UserSummary(BaseModel):
    id: str
    email: str
    name: str | None
    role: Role
    account_owner_id: str | None
    hopsworks_project_id: int | None
    created_at: datetime
    last_login_at: datetime | None
