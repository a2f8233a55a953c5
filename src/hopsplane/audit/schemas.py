"""What the audit log answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    action: str
    account_owner_id: str | None
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: str
    request_id: str | None


CSV_COLUMNS = (
    "id", "occurred_at", "actor_kind", "actor_id", "action", "account_owner_id", "target",
    "before", "after", "source", "request_id",
)
