"""Shapes of outbound webhooks for the API and the console."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hopsplane.webhooks.rules import EventType


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, pattern=r"^https?://\S+$",
                     description="https URL (http only in development); never a loopback, "
                     "private, link-local or metadata address.")
    event_types: list[EventType] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=200)


class EndpointChange(BaseModel):
    """What changes; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(default=None, description="false turns the endpoint off "
                                 "(nothing is delivered to it); true turns it back on.")


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = None
    created_at: datetime
    last_success_at: datetime | None = None
    previous_secret_until: datetime | None = Field(
        default=None, description="During a rotation: until when the previous secret "
        "still signs deliveries too.")


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret. Shown once: store it now.")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    message_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    response_prefix: str | None
    error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
