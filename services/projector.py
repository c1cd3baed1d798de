"""The projector process: runs every projection (or the ones named) against the log until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

from modelreg.projections.migrations import migrate
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations, projection
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)


def tune_gc_for_batches() -> None:
    """A batch allocates thousands of short-lived objects; with the default thresholds the collector
    walks every long-lived object (modules, pydantic schemas, pools) many times per batch. Freeze what
    exists after start-up and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def run_projector(settings: Settings, stopping: asyncio.Event, names: Sequence[str] = ()) -> None:
    names = list(names) or list(PROJECTIONS)
    pool = await create_pool(settings.database_url, min_size=1, max_size=len(names) + 2, durable_commits=False)
    event_log = event_log_for(settings)
    try:
        await migrate(pool, all_migrations())
        await event_log.start()
        runners = [ProjectionRunner(projection(name), event_log, pool) for name in names]
        tune_gc_for_batches()
        log.info("projector: running %s on topic %s", ", ".join(names), settings.topic)
        await asyncio.gather(*(runner.run(stopping) for runner in runners))
    finally:
        await event_log.close()
        await pool.close()
