"""Cursor pagination: opaque cursors over a stable ordinal (version numbers), so deep pages stay index scans."""

from __future__ import annotations

import base64

from modelreg.errors import InvalidInput

MAX_PAGE = 500


def encode_cursor(ordinal: int) -> str:
    return base64.urlsafe_b64encode(f"o:{ordinal}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if kind != "o":
            raise ValueError(kind)
        return int(value)
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned: pass a page's endCursor") from None


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first}")
    return first
