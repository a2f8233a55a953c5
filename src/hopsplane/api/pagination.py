"""The one pagination shape of every list: keyset cursors, newest first by default."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )

DEFAULT_LIMIT = 50


# --- issue 5: keyset cursors ---


def encode_cursor(*parts: str) -> str:
    """An opaque cursor over a keyset (e.g. created_at and id of the last row)."""
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The parts of a cursor made by :func:`encode_cursor`; Invalid when it is not one."""
    import base64
    import binascii
    import json

    from hopsplane.errors import Invalid

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
