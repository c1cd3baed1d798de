"""Text PostgreSQL can store: no U+0000 (text and jsonb refuse it) and no lone surrogate (UTF-8, orjson and
PostgreSQL have no way to write one; a JSON body carries it as the escape "\\ud800").

One rule, two uses. The write side refuses such text at the door, saying where it is (invariant 9).
The read side, decoding events written before that rule or by a foreign producer, replaces each such
character with U+FFFD: a projection then stores the same text on every replay instead of parking the stream.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic_core
from pydantic import BaseModel

from modelreg.errors import quoted, shortened

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A JSON text that holds none of these escapes holds no unstorable character (a raw NUL or a raw surrogate
# is not valid JSON, and orjson refuses it).
_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD")
_SCALARS = (int, float, bool, type(None))


class UnstorableText(ValueError):
    def __init__(self, path: tuple[str | int, ...], character: str, *, in_a_key: bool = False) -> None:
        self.path = path  # the field, then dict keys and list indexes
        self.character = character
        self.in_a_key = in_a_key
        super().__init__(f"{self.where}: {self.problem(self.where)}")

    @property
    def where(self) -> str:
        # The keys on the way are the caller's own, of any length.
        return ".".join(shortened(str(part)) for part in (self.path[:-1] if self.in_a_key else self.path))

    def named(self, path: tuple[str | int, ...]) -> UnstorableText:
        """The same problem, its place named as the caller knows it (GraphQL's names, say)."""
        return UnstorableText(path, self.character, in_a_key=self.in_a_key)

    def problem(self, within: str | None = None) -> str:
        """What is wrong and what to do; `within`: the field the caller names already (not repeated)."""
        place = "" if self.where == within else f" (in {self.where})"
        if self.in_a_key:
            key = self.path[-1]
            place = (
                f" (in the key {quoted(key)})"
                if self.where == within
                else f" (in a key of {self.where}: {quoted(key)})"
            )
        if self.character == "\x00":
            return f"U+0000 cannot be stored{place}; remove it"
        return f"U+{ord(self.character):04X}, a lone surrogate, cannot be stored{place}; send the text as valid UTF-8"


def refuse_unstorable(value: Any, where: str) -> None:
    """Raise UnstorableText naming the first place in `value` (a string, or strings, keys included, inside
    dicts, lists and pydantic models) that holds U+0000 or a lone surrogate; `where` names the value."""
    if isinstance(value, str):
        _refuse_in_text(value, (where,))
    elif not isinstance(value, _SCALARS) and _may_hold_text(value):
        _walk(value, (where,))


def _refuse_in_text(text: str, path: tuple[str | int, ...], *, in_a_key: bool = False) -> None:
    if (found := _UNSTORABLE.search(text)) is not None:
        raise UnstorableText(path, found.group(), in_a_key=in_a_key)


def _may_hold_text(value: Any) -> bool:
    """A cheap look at a whole structure (a manifest may have a million entries) before walking it in Python."""
    try:
        dumped = pydantic_core.to_json(value, serialize_unknown=True)
    except Exception:  # pydantic's writer refuses a lone surrogate (and anything it cannot write): walk to find out
        return True
    return may_hold_unstorable(dumped)


def _walk(value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, str):
        _refuse_in_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _refuse_in_text(key, (*path, key), in_a_key=True)
            _walk(item, (*path, key))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            _walk(item, (*path, index))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), (*path, name))


def may_hold_unstorable(data: bytes) -> bool:
    """Whether a JSON text may hold an unstorable character (false positives are fine, e.g. an escaped
    backslash followed by u0000): the hot path's test before any work."""
    # Our encoder writes a \u escape only for control characters: one search clears almost every event.
    return b"\\u" in data and any(escape in data for escape in _ESCAPES)


def replace_unstorable(value: Any) -> Any:
    """The same JSON value with every U+0000 and lone surrogate, in keys and values, replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {replace_unstorable(key): replace_unstorable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_unstorable(item) for item in value]
    return value
