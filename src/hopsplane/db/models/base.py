"""What every model module shares: the declarative base, the money and unit types, and the
names of the tables in `public`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Numeric,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

MACHINERY_SCHEMA = "hopsplane"
"""Schema for what the machinery needs beyond the six tables (alembic_version, functions)."""

MONEY = Numeric(14, 2)
BALANCE = Numeric(16, 2)
UNITS = Numeric(18, 4)
PRICE = Numeric(12, 6)

_EMPTY_JSON = text("'{}'::jsonb")


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }



CORE_TABLES = (
    "users",
    "hopsworks_clusters",
    "account_clusters",
    "usage_tracking",
    "credits_ledger",
    "team_invites",
)
ORGANIZATION_TABLES = ("organizations", "organization_members")
"""The plan's "Future: Organizations" (revision 0016), beside the six in ``public``."""
PUBLIC_TABLES = CORE_TABLES + ORGANIZATION_TABLES
