"""Run a long-lived part of a process again when it fails, instead of letting the process exit.

In `modelreg server` the projector and the automations need PostgreSQL (and Kafka, when used): when one of
them goes away for a while, their part fails; it is started again once they are back. Their positions are
in PostgreSQL, so a restart resumes where the last committed batch ended.

A part that never ran (PostgreSQL or Kafka not reached at the process's start, after its wait, or refusing its
settings: bootstrap.NeverReached) is not started again either: the process exits saying what to check. Once it ran,
an outage of any length is waited out.

A database migrated by a newer modelreg (MigratedBeyond) is not an outage: starting the part again would only
say so again every few seconds. It stops for good: a server records why and serves on (its /healthz reports the
part stopped), a process that is nothing but that part exits with the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from modelreg.projections.runtime import MigratedBeyond
from modelreg.services.bootstrap import NeverReached

log = logging.getLogger(__name__)


async def restart_on_failure(
    name: str,
    run: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    first_delay_s: float = 1.0,
    max_delay_s: float = 10.0,
    stopped_for_good: dict[str, str] | None = None,
) -> None:
    """Await `run()` until `stopping` is set, starting it again (with a growing pause) whenever it fails.
    A failure that another start cannot mend is raised, or recorded under `name` in `stopped_for_good` if given."""
    delay = first_delay_s
    first = True
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await run()
        except MigratedBeyond as exc:
            log.error("%s stopped and is not started again: %s", name, exc)
            if stopped_for_good is None:
                raise
            stopped_for_good[name] = str(exc)
            return
        except Exception as exc:
            if stopping.is_set():
                return
            if first and isinstance(exc, NeverReached):
                raise  # it never ran: a setting to check, which starting it again would only wait for and say again
            first = False
            if time.monotonic() - started > 60:
                delay = first_delay_s  # it ran well for a while: this is a new outage
            log.error("%s stopped (%s: %s); starting it again in %.0f s", name, type(exc).__name__, exc, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, max_delay_s)


async def until_stopped(stopping: asyncio.Event, parts: list[asyncio.Task[None]]) -> None:
    """Wait for `stopping`. The parts (`restart_on_failure` each) end with it, or stop for good and say so; one that
    ends any other way ends the wait with what it raised, so that the process exits and its supervisor starts it
    again instead of it serving on without the part."""
    waiting = asyncio.ensure_future(stopping.wait())
    watched: set[asyncio.Future[Any]] = {waiting, *parts}
    try:
        while not waiting.done():
            done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for part in done - {waiting}:
                part.result()
    finally:
        waiting.cancel()
