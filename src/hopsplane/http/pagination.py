"""The one pagination shape of every list: keyset cursors, newest first by default."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Generic, Protocol, TypeVar

from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session

from hopsplane.credits import service as credits
from hopsplane.credits.schemas import LedgerEntryOut
from hopsplane.errors import Invalid
from hopsplane.money import digits_range

T = TypeVar("T")

SEQ_CURSOR_PATTERN = f"^(?:{digits_range(1, 2**63 - 1)})$"
"""A ledger page's cursor: the sequence number the next page starts below (1 to 2^63-1)."""
SeqCursor = Annotated[str, StringConstraints(pattern=SEQ_CURSOR_PATTERN)]
UNMATCHED_CURSOR_PATTERN = "^[^ \\u0000]+ [^\\u0000]+$"
"""An unmatched-usage page's cursor: the source (no spaces), a space, the event id."""
UnmatchedCursor = Annotated[
    str, StringConstraints(max_length=600, pattern=UNMATCHED_CURSOR_PATTERN)
]

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


# --- keyset cursors ---


def encode_cursor(*parts: str) -> str:
    """An opaque cursor over a keyset (e.g. created_at and id of the last row)."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The parts of a cursor made by :func:`encode_cursor`; Invalid when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise Invalid("cursor is not one this API returned") from exc
    if not isinstance(parts, list) or len(parts) != size or not all(
        isinstance(p, str) for p in parts
    ):
        raise Invalid("cursor is not one this API returned")
    return parts


def time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """(created_at, id) of the row a newest-first page ended on, from its cursor."""
    if cursor is None:
        return None
    stamp, key = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise Invalid("cursor is not one this API returned") from exc
    if when.tzinfo is None:
        raise Invalid("cursor is not one this API returned")
    return when, key


class _Stamped(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> object: ...


S = TypeVar("S", bound=_Stamped)


def time_page(rows: Sequence[S], limit: int) -> Page[S]:
    """A newest-first page of rows keyed by (created_at, id): a full page carries the
    cursor of its last row (what :func:`time_cursor` reads back)."""
    last = rows[-1] if len(rows) == limit else None
    return Page(
        items=list(rows),
        next_cursor=encode_cursor(last.created_at.isoformat(), str(last.id)) if last else None,
    )


# --- the ledger (sequence-numbered per account) ---


def ledger_page(
    session: Session, account_id: str, limit: int, cursor: str | None
) -> Page[LedgerEntryOut]:
    """Newest first; the cursor is the sequence number below which the next page starts."""
    before: int | None = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or not 1 <= int(cursor) < 2**63:
            raise Invalid("cursor must be a `next_cursor` returned by a previous page")
        before = int(cursor)
    items = credits.history(session, account_id, limit=limit, before_seq=before)
    more = len(items) == limit and items[-1].seq > 1  # sequences run 1, 2, 3, ... per account
    return Page[LedgerEntryOut](items=items, next_cursor=str(items[-1].seq) if more else None)
