"""Data shapes of usage metering, shared by the service, the API and the CLI."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
)

from hopsplane.errors import Invalid
from hopsplane.fields import Identifier, PositiveInt32
from hopsplane.money import digits_range
from hopsplane.usage.rules import (
    MAX_BATCH,
    MAX_EVENT_CPU_SECONDS,
    MAX_EVENT_UNITS,
    parse_quantity,
)


def _quantity(maximum: Decimal, decimals: str) -> object:
    """A quantity 0 to ``maximum`` as plain decimal text (``decimals``: a regex of how many
    digits may follow the point) or an integer: the pattern is both the check and what the
    spec says (``rules.parse_quantity`` then takes it)."""
    top = int(maximum)
    pattern = (
        "^[ \\t]*(?:-(?:0+(?:\\.0*)?|\\.0+)"  # minus zero is zero
        f"|\\+?0*(?:(?:{digits_range(0, top - 1)})(?:\\.[0-9]{decimals}0*)?"
        f"|{top}(?:\\.0*)?|\\.[0-9]{decimals.replace('{0,', '{1,').replace('*', '+')}0*))[ \\t]*$"
    )
    shape = re.compile(pattern)

    def check(value: str | int, info: ValidationInfo) -> str | int:
        name = info.field_name or "quantity"
        try:  # the rules' own message (negative, out of range, too many decimals) first
            parse_quantity(value, name, exact_units=maximum == MAX_EVENT_UNITS)
        except Invalid as exc:
            raise ValueError(exc.message) from exc
        if isinstance(value, str) and not shape.match(value):
            raise ValueError(f"{name} must be plain decimal text such as 12.5, got {value!r}")
        return value

    return Annotated[
        Annotated[StrictStr, StringConstraints(max_length=64),
                  Field(json_schema_extra={"pattern": pattern})]
        | Annotated[StrictInt, Field(json_schema_extra={"minimum": 0, "maximum": top})],
        AfterValidator(check),
    ]


Units: Any = _quantity(MAX_EVENT_UNITS, "{0,4}")
Seconds: Any = _quantity(MAX_EVENT_CPU_SECONDS, "*")


class UsageEventIn(BaseModel):
    """One usage event. Give exactly one of ``account_id`` and ``project_id``, and exactly
    one of ``compute_units`` and ``cpu_seconds`` (decimal strings or integers, never JSON
    floats)."""

    # "Exactly one of" is two schemas the event must match one of: OpenAPI states it, so a
    # client generated from the spec cannot send both or neither.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"oneOf": [
            {"required": ["account_id"], "properties": {"project_id": {"type": "null"},
                                                        "account_id": {"type": "string"}}},
            {"required": ["project_id"], "properties": {"account_id": {"type": "null"},
                                                        "project_id": {"type": "integer"}}},
        ]},
        {"oneOf": [
            {"required": ["compute_units"], "properties": {
                "cpu_seconds": {"type": "null"},
                "compute_units": {"type": ["string", "integer"]}}},
            {"required": ["cpu_seconds"], "properties": {
                "compute_units": {"type": "null"},
                "cpu_seconds": {"type": ["string", "integer"]}}},
        ]},
    ]})

    id: Identifier = Field(
        description="Id chosen by the sender, unique among the sender's events (a cluster's "
        "agent, or the admin API): the sender's repeat is ignored; the same id from another "
        "sender is another event. No spaces around it; ids starting with `prom:` are "
        "reserved for usage collected from Prometheus.",
        json_schema_extra={"pattern": "^(?!prom:)[^\\s\\u0000](?:[^\\u0000]*[^\\s\\u0000])?$"},
    )
    account_id: Identifier | None = Field(
        None, description="A user id: an account owner, or a member (billed to their owner)."
    )
    project_id: PositiveInt32 | None = Field(None, description="A Hopsworks project id.")
    cluster_id: uuid.UUID | None = Field(
        None, description="The cluster the usage ran on (a cluster agent's own, implicitly)."
    )
    timestamp: datetime = Field(description="When the usage happened (with a time zone).")
    compute_units: Units | None = Field(
        None, description=f"Compute units, 0 to {MAX_EVENT_UNITS:,}, at most 4 decimals."
    )
    cpu_seconds: Seconds | None = Field(
        None, description=f"CPU core-seconds, 0 to {MAX_EVENT_CPU_SECONDS:,} "
        "(1 CPU-hour = 10,000 units)."
    )
    user_id: Identifier | None = Field(
        None, description="The user (owner or member of the account) who used it."
    )


class UsageBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageEventIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(BaseModel):
    received: int = Field(description="Events in the request.")
    accepted: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events whose id was already known (ignored).")
    unmatched: int = Field(
        description="New events whose account/project is unknown yet: kept, not billed."
    )
    days_updated: int = Field(description="(account, day) rows of usage_tracking changed.")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A validated event, ready to store (the repository's input row)."""

    event_id: str
    source: str
    cluster_id: uuid.UUID | None
    account_id: str | None
    project_id: int | None
    namespace: str | None
    user_id: str | None
    occurred_at: datetime
    compute_units: Decimal
    cpu_seconds: Decimal | None

    def row(self) -> tuple[object, ...]:
        return (
            self.event_id, self.source, self.cluster_id, self.account_id, self.project_id,
            self.namespace, self.user_id, self.occurred_at, self.compute_units, self.cpu_seconds,
        )


class UnmatchedEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: str
    source: str
    cluster_id: uuid.UUID | None
    account_id: str | None
    project_id: int | None
    namespace: str | None
    user_id: str | None
    occurred_at: datetime
    day: date
    compute_units: Decimal
    cpu_seconds: Decimal | None
    problem: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RefoldResult:
    folded: int
    still_unmatched: int


@dataclass(frozen=True, slots=True)
class StoredCollected:
    """A collected (Prometheus) event as stored."""

    event_id: str
    namespace: str
    cpu_seconds: Decimal
    compute_units: Decimal


@dataclass(slots=True)
class CollectResult:
    cluster_id: uuid.UUID
    day: date
    namespaces: int = 0
    new: int = 0
    corrected: int = 0
    unchanged: int = 0
    ignored: list[str] = field(default_factory=list)
    unmatched: int = 0
    cpu_seconds: Decimal = Decimal(0)
    error: str | None = None
    through: datetime | None = None  # what the day was collected up to (its end: complete)
    accounts: list[str] = field(default_factory=list)  # accounts whose usage changed
