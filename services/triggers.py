"""The `modelreg triggers` process: the automation runner (and the requeue of vanished agents' jobs).

The trigger projection itself runs in the projector like every projection; this process acts on what
it recorded.
"""

from __future__ import annotations

import asyncio
import logging

from modelreg.projections.progress import ProjectionProgress
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services.automations.runner import AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.commands.application import Application
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import shown_to_commands
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)


async def run_triggers(settings: Settings, stopping: asyncio.Event, *, webhook_backoff_s: float = 0.5) -> None:
    pool = await create_pool(settings.database_url, min_size=2, max_size=10)
    event_log = event_log_for(settings)
    progress = ProjectionProgress(pool)
    try:
        await event_log.start()
        await progress.start()
        app = Application(
            event_log,
            RegistryQueries(pool),
            progress,
            projections=shown_to_commands(),
            read_your_writes_timeout_s=settings.read_your_writes_timeout_s,
        )
        runner = AutomationRunner(
            app,
            WebhookSecrets(settings.webhook_secret_key),
            agent_timeout_s=settings.agent_timeout_s,
            webhook_backoff_s=webhook_backoff_s,
        )
        log.info("triggers: carrying out automations on topic %s", settings.topic)
        await runner.run(stopping)
    finally:
        await progress.close()
        await event_log.close()
        await pool.close()
