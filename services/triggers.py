"""The `modelreg triggers` process: the automation runner (and the requeue of vanished agents' jobs).

The trigger projection itself runs in the projector like every projection; this process acts on what
it recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from modelreg.services.automations.runner import WEBHOOK_BACKOFF_S, AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.bootstrap import ProcessParts, given_or_own
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)

# One replica carries out automations at a time (a webhook is delivered once, not once per replica); the others
# wait on this PostgreSQL advisory lock and one takes over within a second when the active one dies (its
# session ends, and the lock with it). Its key must differ from the migrations' lock (projections/migrations.py):
# an active replica holds this one for its whole life, and would otherwise block every later start's migrations.
ACTIVE_LOCK = 0x6D6F64656C747267  # "modeltrg"
# How often the active replica asks whether the session holding its lock still lives. A session can end under a
# replica that goes on (PostgreSQL restarted or failed over, an idle-session killer, a proxy in between): the lock
# went with it, a standby took it within a second, and two replicas carried out every firing side by side for good.
LOCK_CHECKED_EVERY_S = 1.0


class LostTheActiveLock(Exception):
    """The session holding the active replica's lock ended: another replica may be active now."""


@contextlib.asynccontextmanager
async def active_replica(
    settings: Settings, stopping: asyncio.Event, lost: asyncio.Event | None = None
) -> AsyncIterator[bool]:
    """Yields True once this replica holds the lock (False if stopped first); holds it until the block ends.
    `lost` is set if the lock's session ends meanwhile."""
    conn = await asyncpg.connect(settings.database_url)
    watching: asyncio.Task[None] | None = None
    try:
        announced = False
        while not stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", ACTIVE_LOCK):
                break
            if not announced:
                log.info("triggers: another replica is active; standing by")
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
        if lost is not None and not stopping.is_set():
            watching = asyncio.create_task(_watch_the_lock(conn, stopping, lost))
        yield not stopping.is_set()
    finally:
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        with contextlib.suppress(OSError, asyncpg.InterfaceError):  # its session may be gone already
            await conn.close()  # releases the lock


async def _watch_the_lock(conn: asyncpg.Connection, stopping: asyncio.Event, lost: asyncio.Event) -> None:
    """Sets `lost` once the lock's session no longer answers: a session that answers still holds the lock, and one
    that cannot answer in time may be gone (its lock with it)."""
    while not stopping.is_set():
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 5 * LOCK_CHECKED_EVERY_S)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("triggers: the session holding the active lock ended (%s): standing down", exc)
            lost.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), LOCK_CHECKED_EVERY_S)


async def run_triggers(
    settings: Settings,
    stopping: asyncio.Event,
    *,
    webhook_backoff_s: float = WEBHOOK_BACKOFF_S,
    parts: ProcessParts | None = None,
) -> None:
    """`parts`: the process's own (services/bootstrap.py) when it does more than carry out automations."""
    async with given_or_own(parts, settings, pool_size=10) as wired:
        application = await wired.application()
        runner = AutomationRunner(
            application,
            WebhookSecrets(settings.webhook_secret_key),
            agent_timeout_s=settings.agent_timeout_s,
            run_crashed_after_s=settings.run_crashed_after_s,
            webhook_backoff_s=webhook_backoff_s,
        )
        lost = asyncio.Event()
        async with active_replica(settings, stopping, lost) as active:
            if not active:
                return  # stopped while standing by
            log.info("triggers: carrying out automations on topic %s", settings.topic)
            # The runner stops when the process does, or when the lock is lost: a firing it had in flight stays
            # pending, for whichever replica is active next (the same job id, the same webhook delivery id).
            runner_stopping = asyncio.Event()
            relay = asyncio.create_task(_first_of(stopping, lost, then=runner_stopping))
            try:
                await runner.run(runner_stopping)
            finally:
                relay.cancel()
                await application.close()
        if lost.is_set() and not stopping.is_set():
            # Started again (restart_on_failure, the process's supervisor), it stands by if another took the lock.
            raise LostTheActiveLock("the session holding the active replica's lock ended; another may be active")


async def _first_of(*events: asyncio.Event, then: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        then.set()
    finally:
        for wait in waits:
            wait.cancel()
