"""Shapes of organizations as the API returns them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hopsplane.organizations.rules import OrgRole


def _printable_name(schema: dict[str, Any]) -> None:
    # At least one character that is not a space. Which characters Unicode calls printable
    # (str.isprintable) is a class of hundreds of ranges, and one written out is no
    # pattern a JavaScript client can read: that rule is stated in words instead.
    schema["pattern"] = "\\S"


class OrganizationCreate(BaseModel):
    name: str = Field(
        min_length=1, max_length=100, json_schema_extra=_printable_name,
        description="Printable characters (as Unicode defines them: no control or "
        "format characters) with at least one that is not a space (runs of spaces become "
        "one); a name with others is refused (422).",
    )


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
