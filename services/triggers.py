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


@contextlib.asynccontextmanager
async def active_replica(settings: Settings, stopping: asyncio.Event) -> AsyncIterator[bool]:
    """Yields True once this replica holds the lock (False if stopped first); holds it until the block ends."""
    conn = await asyncpg.connect(settings.database_url)
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
        yield not stopping.is_set()
    finally:
        await conn.close()  # releases the lock


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
        async with active_replica(settings, stopping) as active:
            if not active:
                return  # stopped while standing by
            log.info("triggers: carrying out automations on topic %s", settings.topic)
            try:
                await runner.run(stopping)
            finally:
                await application.close()
