"""Shapes of organizations as the API returns them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from hopsplane.organizations.rules import OrgRole


class OrganizationCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class OrganizationOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    members: int
    my_role: OrgRole | None = Field(description="The caller's role in it (null: the owner).")


class OrgMemberIn(BaseModel):
    email: str = Field(min_length=3, max_length=320, description="A person of the account.")
    role: OrgRole


class OrgMemberOut(BaseModel):
    user_id: str
    email: str
    name: str | None
    role: OrgRole
    added_at: datetime
