"""Work on many items at once in a few threads: hashing, uploading and downloading an artifact's files.

At interpreter exit (a run the script left open is finished then: modelreg.session) Python refuses new
threads to pools, so the same work is done one item after another instead of not at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_in_parallel(work: Callable[[Item], Result], items: Iterable[Item], threads: int) -> list[Result]:
    """`work(item)` for each item, in order of the items, in up to `threads` threads."""
    items = list(items)
    if sys.is_finalizing() or _pools_closed():
        return [work(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, items))


def _pools_closed() -> bool:
    """Whether Python's thread pools take no more work (set at interpreter shutdown, before atexit handlers)."""
    import concurrent.futures.thread as pools

    return bool(getattr(pools, "_shutdown", False))
