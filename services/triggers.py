"""The `modelreg triggers` process: the automation runner (and the requeue of vanished agents' jobs).

The trigger projection itself runs in the projector like every projection; this process acts on what
it recorded.
"""

from __future__ import annotations

import asyncio
import logging

from modelreg.services.automations.runner import AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.bootstrap import ProcessParts, given_or_own
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)


async def run_triggers(
    settings: Settings,
    stopping: asyncio.Event,
    *,
    webhook_backoff_s: float = 0.5,
    parts: ProcessParts | None = None,
) -> None:
    """`parts`: the process's own (services/bootstrap.py) when it does more than carry out automations."""
    async with given_or_own(parts, settings, pool_size=10) as wired:
        runner = AutomationRunner(
            await wired.application(),
            WebhookSecrets(settings.webhook_secret_key),
            agent_timeout_s=settings.agent_timeout_s,
            webhook_backoff_s=webhook_backoff_s,
        )
        log.info("triggers: carrying out automations on topic %s", settings.topic)
        await runner.run(stopping)
