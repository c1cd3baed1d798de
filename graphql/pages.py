"""Cursor pagination: opaque cursors over a stable ordinal (version numbers), so deep pages stay index scans."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

from modelreg.errors import InvalidInput

MAX_PAGE = 500
MAX_ORDINAL = 2**31 - 1  # version_index is a PostgreSQL int: a bigger one is no cursor of ours


def encode_cursor(ordinal: int) -> str:
    return base64.urlsafe_b64encode(f"o:{ordinal}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if kind != "o" or not 0 <= int(value) <= MAX_ORDINAL:
            raise ValueError(kind)
        return int(value)
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned: pass a page's endCursor") from None


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first}")
    return first


def page(rows: list[dict[str, Any]], limit: int, after: str | None) -> dict[str, Any]:
    """A page from `limit + 1` rows ordered by `version_index`: the extra row only says there is more."""
    items = rows[:limit]
    return {
        "items": items,
        "end_cursor": encode_cursor(items[-1]["version_index"]) if items else after,
        "has_next_page": len(rows) > limit,
    }


def encode_key_cursor(*parts: str) -> str:
    """A cursor over a sort key that is not an ordinal (a name; a time and an id)."""
    return base64.urlsafe_b64encode(("k:" + "\x1f".join(parts)).encode()).decode()


def decode_key_cursor(cursor: str | None, parts: int) -> list[str] | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError:
        text = ""
    values = text.removeprefix("k:").split("\x1f")
    if not text.startswith("k:") or len(values) != parts:
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned: pass a page's endCursor")
    return values


def decode_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A cursor over newest-first rows: the (time, tie-breaking key) of the last row of the previous page."""
    parts = decode_key_cursor(cursor, 2)
    if parts is None:
        return None
    try:
        return datetime.fromisoformat(parts[0]), parts[1]
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned: pass a page's endCursor") from None


def encode_time_cursor(at: datetime, key: object) -> str:
    return encode_key_cursor(at.isoformat(), str(key))


def key_page(
    rows: list[dict[str, Any]], limit: int, after: str | None, cursor_of: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """A page from `limit + 1` rows in key order: the extra row only says there is more."""
    items = rows[:limit]
    return {"items": items, "end_cursor": cursor_of(items[-1]) if items else after, "has_next_page": len(rows) > limit}
