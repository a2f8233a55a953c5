"""What API keys are made of on the wire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hopsplane.apikeys.rules import MAX_LIFETIME_DAYS, Scope


def _printable_name(schema: dict[str, Any]) -> None:
    # which characters Unicode calls printable is no portable pattern: said in words
    schema["pattern"] = "\\S"


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, json_schema_extra=_printable_name,
        description="What the key is for: printable characters (as Unicode defines them: no "
        "control or format characters) with at least one that is not a space; a name with "
        "others is refused (422).")
    scopes: list[Scope] = Field(min_length=1, max_length=5,
                                description="What the key may do; one scope per route.")
    expires_in_days: int = Field(90, ge=1, le=MAX_LIFETIME_DAYS,
                                 description="Days until the key stops working.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("a key's name is printable characters, at least one not a space")
        return value


class ApiKeyOut(BaseModel):
    """A key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    display_prefix: str = Field(description="The first characters of the key, to tell keys "
                                "apart.")
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The key. Shown this once: only its hash is kept.")


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """A live key that authenticated a request."""

    key_id: uuid.UUID
    account_owner_id: str
    scopes: frozenset[str]
