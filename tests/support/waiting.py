"""Waiting for an asynchronous outcome (a projection catching up) by condition, never by a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 60.0, every_s: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


async def until(condition: Callable[[], bool], timeout_s: float = 30.0, every_s: float = 0.01) -> None:
    """`wait_until` for a condition read off an object in this process (a counter of the server under test)."""

    async def holds() -> bool:
        return condition()

    await wait_until(holds, timeout_s, every_s)
