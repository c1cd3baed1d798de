"""Rebuild a projection from offset 0: forget its tables and positions, then replay the whole log.

The replay can be spread over several processes, each owning a share of the partitions: projections
tolerate any order between partitions, and each partition's position is its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Sequence

import asyncpg

from modelreg.projections.migrations import migrate
from modelreg.projections.positions import reset, stored_positions
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import all_migrations, projection
from modelreg.services.projector import tune_gc_for_batches
from modelreg.services.settings import Settings

Progress = Callable[[int, int], None]
REPLAY_BATCH = 20_000


async def rebuild(settings: Settings, name: str, *, processes: int = 1, on_progress: Progress | None = None) -> float:
    """Returns the seconds the replay took (from the reset until every partition caught up).

    A projector running meanwhile notices the reset, seeks back and applies alongside: the position
    row locks keep every event applied once.
    """
    target = projection(name)
    pool = await create_pool(settings.database_url, min_size=1, max_size=3, durable_commits=False)
    event_log = event_log_for(settings)
    try:
        await migrate(pool, all_migrations())
        await event_log.start()
        ends = await event_log.end_positions()
        async with pool.acquire() as conn, conn.transaction():
            await reset(conn, target.name, target.tables)
        tune_gc_for_batches()
        started = time.perf_counter()
        shares = [share for share in (sorted(ends)[i::processes] for i in range(max(processes, 1))) if share]
        spawn = multiprocessing.get_context("spawn")
        workers = [spawn.Process(target=_replay_in_a_process, args=(settings, name, share)) for share in shares[1:]]
        stopping = asyncio.Event()
        runner = ProjectionRunner(target, event_log, pool, max_batch=REPLAY_BATCH, partitions=shares[0])
        task = asyncio.create_task(runner.run(stopping))
        try:
            for worker in workers:
                worker.start()
            await _until_caught_up(pool, event_log.topic, name, ends, on_progress, task, workers)
            return time.perf_counter() - started
        finally:
            stopping.set()
            try:
                await task
            finally:
                for worker in workers:
                    worker.join(30)
                    if worker.is_alive():
                        worker.terminate()
    finally:
        await event_log.close()
        await pool.close()


async def _until_caught_up(
    pool: asyncpg.Pool,
    topic: str,
    name: str,
    ends: dict[int, int],
    on_progress: Progress | None,
    runner: asyncio.Task[None] | None = None,
    workers: Sequence[multiprocessing.process.BaseProcess] = (),
) -> None:
    total = sum(ends.values())
    while True:
        async with pool.acquire() as conn:
            done = await stored_positions(conn, name, topic)
        applied = sum(min(done.get(p, 0), end) for p, end in ends.items())
        if on_progress:
            on_progress(applied, total)
        if applied >= total:
            return
        if runner is not None and runner.done():
            runner.result()  # surfaces the runner's error
            raise RuntimeError(f"projection {name}: the replay stopped before catching up")
        for worker in workers:
            if worker.exitcode not in (None, 0):
                raise RuntimeError(
                    f"projection {name}: a replay process failed (exit {worker.exitcode}); run the rebuild again"
                )
        await asyncio.sleep(0.05)


def _replay_in_a_process(settings: Settings, name: str, partitions: Sequence[int]) -> None:
    tune_gc_for_batches()
    asyncio.run(_replay(settings, name, partitions))


async def _replay(settings: Settings, name: str, partitions: Sequence[int]) -> None:
    """Apply the log to `partitions` until each reaches the end it had when this started."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, durable_commits=False)
    event_log = event_log_for(settings)
    try:
        await event_log.start()
        ends = {p: end for p, end in (await event_log.end_positions()).items() if p in partitions}
        stopping = asyncio.Event()
        runner = ProjectionRunner(projection(name), event_log, pool, max_batch=REPLAY_BATCH, partitions=partitions)
        task = asyncio.create_task(runner.run(stopping))
        try:
            await _until_caught_up(pool, event_log.topic, name, ends, None, task)
        finally:
            stopping.set()
            await task
    finally:
        await event_log.close()
        await pool.close()
