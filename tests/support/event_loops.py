"""Stories run on a chosen event loop, for what behaves differently on uvloop (its transports, its callbacks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

Run = Callable[[Coroutine[Any, Any, None]], None]


def run_on(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> Run:
    def on_the_loop(story: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(story)

    return on_the_loop
