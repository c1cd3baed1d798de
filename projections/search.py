"""Finding a name by a part of it, as the search boxes do: any case, with `%` and `_` meaning themselves."""

from __future__ import annotations


def like_pattern(search: str) -> str:
    """A (I)LIKE pattern matching `search` anywhere in a text, lowercased, its % and _ taken literally."""
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
