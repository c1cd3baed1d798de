"""Rebuild a projection from offset 0: forget its tables and positions, then replay the whole log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from modelreg.events.kafka_log import KafkaEventLog
from modelreg.projections.migrations import migrate
from modelreg.projections.positions import reset, stored_positions
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.database import create_pool
from modelreg.services.projections_catalog import all_migrations, projection
from modelreg.services.projector import tune_gc_for_batches
from modelreg.services.settings import Settings

Progress = Callable[[int, int], None]


async def rebuild(settings: Settings, name: str, on_progress: Progress | None = None) -> float:
    """Returns the seconds the replay took. A projector running meanwhile notices the reset and helps."""
    target = projection(name)
    pool = await create_pool(settings.database_url, min_size=1, max_size=3, durable_commits=False)
    event_log = KafkaEventLog(settings.kafka_bootstrap_servers, settings.topic, settings.partitions)
    try:
        await migrate(pool, all_migrations())
        await event_log.start()
        ends = await event_log.end_positions()
        total = sum(ends.values())
        async with pool.acquire() as conn, conn.transaction():
            await reset(conn, target.name, target.tables)
        tune_gc_for_batches()
        started = time.perf_counter()
        stopping = asyncio.Event()
        runner = ProjectionRunner(target, event_log, pool, max_batch=20_000)
        task = asyncio.create_task(runner.run(stopping))
        try:
            while True:
                async with pool.acquire() as conn:
                    done = await stored_positions(conn, target.name, event_log.topic)
                applied = sum(min(done.get(p, 0), end) for p, end in ends.items())
                if on_progress:
                    on_progress(applied, total)
                if applied >= total:
                    return time.perf_counter() - started
                if task.done():
                    task.result()  # surfaces the runner's error
                await asyncio.sleep(0.05)
        finally:
            stopping.set()
            await task
    finally:
        await event_log.close()
        await pool.close()
