"""Run a long-lived part of a process again when it fails, instead of letting the process exit.

In `modelreg server` the projector and the automations need PostgreSQL (and Kafka, when used): when one of
them goes away for a while, their part fails; it is started again once they are back. Their positions are
in PostgreSQL, so a restart resumes where the last committed batch ended.

A database migrated by a newer modelreg (MigratedBeyond) is not an outage: starting the part again would only
say so again every few seconds. It stops for good: the server records why (its /readyz reports it, so traffic
goes to upgraded replicas), a process that is nothing but that part exits with the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

from modelreg.projections.runtime import MigratedBeyond

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
            if time.monotonic() - started > 60:
                delay = first_delay_s  # it ran well for a while: this is a new outage
            log.error("%s stopped (%s: %s); starting it again in %.0f s", name, type(exc).__name__, exc, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, max_delay_s)
