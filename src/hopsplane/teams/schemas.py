"""Shapes of teams, shared by the service, the API and the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.fields import EmailText, PositiveInt32, Token
from hopsplane.teams.rules import MAX_EXPIRY_DAYS


class InviteStatus(StrEnum):
    PENDING = "pending"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailText = Field(description="Who to invite.")
    expires_in_days: int | None = Field(
        None, ge=1, le=MAX_EXPIRY_DAYS,
        description="Lifetime of the invite (default HOPSPLANE_INVITE_EXPIRY_DAYS).",
    )


class ResendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in_days: int | None = Field(None, ge=1, le=MAX_EXPIRY_DAYS)


class InviteOut(BaseModel):
    id: uuid.UUID
    email: str
    status: InviteStatus
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: str | None
    revoked_at: datetime | None
    accept_link: str | None = Field(
        None, description="Only when the server cannot send email (development without "
        "SMTP), on the answer that made the link: give it to the invitee yourself. Never "
        "stored, never logged, never listed."
    )


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token = Field(description="The token from the invite link.")


class MemberOut(BaseModel):
    id: str
    email: str
    name: str | None
    hopsworks_username: str | None
    hopsworks_project_id: int | None
    created_at: datetime
    last_login_at: datetime | None


class Membership(BaseModel):
    account_owner_id: str
    member_id: str
    invite_id: uuid.UUID


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hopsworks_project_id: PositiveInt32
