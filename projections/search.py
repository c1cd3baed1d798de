"""Finding a name by a part of it, as the search boxes do: any case, with `%` and `_` meaning themselves; and
how many searches of one caller run at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


def like_pattern(search: str) -> str:
    """A (I)LIKE pattern matching `search` anywhere in a text, lowercased, its % and _ taken literally."""
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchSlots:
    """At most `per_caller` searches of one caller in flight at once, and `in_all` of every caller's; the others
    wait their turn.

    A runs search runs the caller's own filters, which may take seconds (up to the search timeout) and hold a
    pool connection meanwhile; without turns, one caller's aliased searches, or requests side by side, could
    hold every connection of the pool and stall every other reader."""

    def __init__(self, per_caller: int, in_all: int = 5) -> None:
        self.per_caller = per_caller
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}  # caller -> (its turns, searches waiting or in)
        self._all = asyncio.Semaphore(in_all)  # and every caller's together, below the pool's size

    @contextlib.asynccontextmanager
    async def of(self, caller: str) -> AsyncIterator[None]:
        turns, users = self._slots.get(caller) or (asyncio.Semaphore(self.per_caller), 0)
        self._slots[caller] = (turns, users + 1)
        try:
            async with turns, self._all:
                yield
        finally:
            turns, users = self._slots[caller]
            if users == 1:
                del self._slots[caller]
            else:
                self._slots[caller] = (turns, users - 1)
