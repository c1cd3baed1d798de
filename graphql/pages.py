"""Every list is a page: `<Type>Page {items, endCursor, hasNextPage}`, asked for with `first` and `after`.

Cursors are opaque: over a stable ordinal (version numbers) or a sort key (a name; a time and an id), so
deep pages stay index scans.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

import graphene

from modelreg.errors import InvalidInput, quoted
from modelreg.projections.timestamps import parsed_time

MAX_PAGE = 500
MAX_ORDINAL = 2**31 - 1  # version_index is a PostgreSQL int: a bigger one is no cursor of ours


def page_of(item: Any, *, name: str | None = None, **more: Any) -> type[graphene.ObjectType]:
    """The page type of `item` (a graphene type, or a lambda naming one: then give `name`); `more` adds fields
    (and their `resolve_` functions) to this page type only, e.g. a totalCount."""
    fields = {
        "items": graphene.List(graphene.NonNull(item), required=True),
        "end_cursor": graphene.String(description="pass as `after` to get the next page"),
        "has_next_page": graphene.Boolean(required=True),
        **more,
    }
    return type(name or f"{item.__name__}Page", (graphene.ObjectType,), fields)


def paged(page_type: Any, *, first: int = 50, description: str | None = None, **arguments: Any) -> graphene.Field:
    """A list field: a page of `first` items after the cursor `after`, plus the list's own arguments."""
    return graphene.Field(
        page_type,
        required=True,
        description=description,
        first=graphene.Int(default_value=first, description=f"how many, 1 to {MAX_PAGE}"),
        after=graphene.String(description="a page's endCursor: the page after it"),
        **arguments,
    )


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
        raise InvalidInput(f"cursor {quoted(cursor)} is not one this API returned: pass a page's endCursor") from None


def page_size(first: int | None) -> int:
    if first is None:  # sent as null: the default applies only when `first` is left out
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got null: leave it out for the default")
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
    # U+0000 passes UTF-8 decoding, and PostgreSQL's text refused it inside the query (INTERNAL, retriable).
    if not text.startswith("k:") or len(values) != parts or "\x00" in text:
        raise InvalidInput(f"cursor {quoted(cursor)} is not one this API returned: pass a page's endCursor")
    return values


def decode_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A cursor over newest-first rows: the (time, tie-breaking key) of the last row of the previous page."""
    parts = decode_key_cursor(cursor, 2)
    if parts is None:
        return None
    try:
        return parsed_time(parts[0]), parts[1]
    except ValueError:
        raise InvalidInput(f"cursor {quoted(cursor)} is not one this API returned: pass a page's endCursor") from None


def encode_time_cursor(at: datetime, key: object) -> str:
    return encode_key_cursor(at.isoformat(), str(key))


def key_page(
    rows: list[dict[str, Any]], limit: int, after: str | None, cursor_of: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """A page from `limit + 1` rows in key order: the extra row only says there is more."""
    items = rows[:limit]
    return {"items": items, "end_cursor": cursor_of(items[-1]) if items else after, "has_next_page": len(rows) > limit}


def encode_row_cursor(*parts: object) -> str:
    """A cursor over a sort key of several typed parts (a time, a number, an id)."""
    return encode_key_cursor(*(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts))


def decode_row_cursor(cursor: str | None, *parsers: Callable[[str], Any]) -> tuple[Any, ...] | None:
    """The parts of an `encode_row_cursor` cursor, each read back by its parser (int32, parsed_time,
    UUID)."""
    parts = decode_key_cursor(cursor, len(parsers))
    if parts is None:
        return None
    try:
        return tuple(parse(part) for parse, part in zip(parsers, parts, strict=True))
    except ValueError:
        raise InvalidInput(f"cursor {quoted(cursor)} is not one this API returned: pass a page's endCursor") from None


def int32(text: str) -> int:
    """A number of a cursor, as PostgreSQL's integer holds it (a job's priority, an attempt). Read with `int`, any
    number passed, and a bigger one failed the query: an INTERNAL error, with a traceback in the log, for the
    caller's mistake."""
    value = int(text)
    if not -MAX_ORDINAL <= value <= MAX_ORDINAL:  # and its negation too (waiting jobs sort by -priority)
        raise ValueError(text)
    return value
