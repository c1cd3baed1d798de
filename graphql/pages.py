"""Every list is a page: `<Type>Page {items, endCursor, hasNextPage}`, asked for with `first` and `after`.

Cursors are opaque: over a stable ordinal (version numbers) or a sort key (a name; a time and an id), so
deep pages stay index scans; each names its list (`Cursors`), so another list's is refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import graphene

from modelreg.errors import InvalidInput, quoted
from modelreg.events.storable_text import refuse_unstorable

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


def page_size(first: int | None) -> int:
    if first is None:  # sent as null: the default applies only when `first` is left out
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got null: leave it out for the default")
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}, got {first}")
    return first


def page(rows: list[dict[str, Any]], limit: int, after: str | None, cursors: Cursors) -> dict[str, Any]:
    """A page from `limit + 1` rows ordered by `version_index`: the extra row only says there is more."""
    return key_page(rows, limit, after, lambda last: cursors.encode(last["version_index"]))


def key_page(
    rows: list[dict[str, Any]], limit: int, after: str | None, cursor_of: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """A page from `limit + 1` rows in key order: the extra row only says there is more."""
    items = rows[:limit]
    return {"items": items, "end_cursor": cursor_of(items[-1]) if items else after, "has_next_page": len(rows) > limit}


@dataclass(frozen=True)
class Cursors:
    """The cursors of one list. Each names its list, so that one from another list is refused even where its parts
    would fit (a version number, a name, a time and an id): read here, it paged the wrong list silently.

    A cursor is a JSON array, [list, part, ...], in base64: parts of any text (a name holding the old separator
    made a cursor this API could not read back), each read back by its parser (`int32`, `ordinal`, `parsed_time`,
    `UUID`) or refused."""

    list: str

    @classmethod
    def of(cls, info: graphene.ResolveInfo, order: str | None = None) -> Cursors:
        """The list `info` resolves (`launchJobs`, `LaunchQueue.jobs`); `order` for a list whose arguments choose
        its order, and with it what its cursors hold (`runs(order: +config.lr)`)."""
        parent = info.parent_type.name
        field = info.field_name if parent == info.schema.query_type.name else f"{parent}.{info.field_name}"
        return cls(f"{field}({order})" if order else field)

    def encode(self, *parts: object) -> str:
        text = json.dumps([self.list, *(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)])
        return base64.urlsafe_b64encode(text.encode()).decode()

    def decode(self, cursor: str | None, *parsers: Callable[[str], Any]) -> tuple[Any, ...] | None:
        """The parts of a cursor of this list, read back; None for no cursor (the first page)."""
        if cursor is None:
            return None
        try:
            listed = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (ValueError, RecursionError):
            raise self.refused(cursor) from None
        if not isinstance(listed, list) or not listed or listed[0] != self.list or len(listed) != len(parsers) + 1:
            raise self.refused(cursor)
        parts = listed[1:]
        if not all(isinstance(part, str) for part in parts):
            raise self.refused(cursor)
        try:
            # U+0000 and a lone surrogate decode, and PostgreSQL refused them inside the query (INTERNAL, retriable).
            refuse_unstorable(parts, "cursor")
            return tuple(parse(part) for parse, part in zip(parsers, parts, strict=True))
        except ValueError:
            raise self.refused(cursor) from None

    def refused(self, cursor: str) -> InvalidInput:
        return InvalidInput(
            f"cursor {quoted(cursor)} is not one this API returned: pass a page's endCursor, from {self.list} asked "
            "with the same arguments"
        )


def ordinal(text: str) -> int:
    """A version number, a stream's sequence or a step, as a cursor holds it: PostgreSQL's version_index is an int, and
    a bigger one is no cursor of ours."""
    value = int(text)
    if not 0 <= value <= MAX_ORDINAL:
        raise ValueError(text)
    return value


def int32(text: str) -> int:
    """A number of a cursor, as PostgreSQL's integer holds it (a job's priority, an attempt). Read with `int`, any
    number passed, and a bigger one failed the query: an INTERNAL error, with a traceback in the log, for the
    caller's mistake."""
    value = int(text)
    if not -MAX_ORDINAL <= value <= MAX_ORDINAL:  # and its negation too (waiting jobs sort by -priority)
        raise ValueError(text)
    return value
