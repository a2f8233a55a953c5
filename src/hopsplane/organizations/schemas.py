"""Shapes of organizations as the API returns them."""

from __future__ import annotations

import functools
import sys
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hopsplane.organizations.rules import OrgRole


@functools.cache
def _unprintable() -> str:
    """A regex class body of the characters ``rules.clean_name`` refuses: not printable
    (str.isprintable) and not whitespace (which it folds into one space), in this Python's
    Unicode database."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char.isprintable() or char.isspace():
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(
        f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges
    ).replace("\\U0000", "\\u")


def _printable_name(schema: dict[str, Any]) -> None:
    bad = _unprintable()
    schema["pattern"] = f"^[^{bad}]*[^{bad}\\s][^{bad}]*$"


class OrganizationCreate(BaseModel):
    name: str = Field(
        min_length=1, max_length=100, json_schema_extra=_printable_name,
        description="Printable characters with at least one that is not a space (runs of "
        "spaces become one).",
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
