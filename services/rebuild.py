"""Rebuild projections from offset 0: forget their tables and positions, then replay the whole log.

Several projections rebuilt together share one reader of the log (each record decoded once). The replay
can be spread over several processes, each owning a share of the partitions: projections tolerate any
order between partitions, and each partition's position is its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Sequence

import asyncpg

from modelreg.projections.positions import reset, stored_positions
from modelreg.services.bootstrap import process_parts
from modelreg.services.projections_catalog import projection
from modelreg.services.projector import tune_gc
from modelreg.services.settings import Settings

Progress = Callable[[int, int], None]
# A replay reads full batches and applies each to every projection before reading the next: reading ahead
# (log_reader.LANE_BATCHES) cost it CPU and gained nothing.
REPLAY_BATCH = 20_000


async def rebuild(
    settings: Settings, names: str | Sequence[str], *, processes: int = 1, on_progress: Progress | None = None
) -> float:
    """Returns the seconds the replay took (from the reset until every partition caught up).

    A projector running meanwhile notices the reset, seeks back and applies alongside: the position
    row locks keep every event applied once.
    """
    names = [names] if isinstance(names, str) else list(names)
    targets = [projection(name) for name in names]  # an unknown name fails before anything is reset
    async with process_parts(settings, pool_size=len(names) + 2, durable_commits=False) as parts:
        ends = await parts.event_log.end_positions()
        async with parts.pool.acquire() as conn, conn.transaction():
            for target in targets:
                await reset(conn, target.name, target.tables)
        tune_gc()
        started = time.perf_counter()
        shares = [share for share in (sorted(ends)[i::processes] for i in range(max(processes, 1))) if share]
        spawn = multiprocessing.get_context("spawn")
        workers = [spawn.Process(target=_replay_in_a_process, args=(settings, names, share)) for share in shares[1:]]
        stopping = asyncio.Event()
        reader = parts.log_reader(names, max_batch=REPLAY_BATCH, lane_batches=0, partitions=shares[0])
        task = asyncio.create_task(reader.run(stopping))
        try:
            for worker in workers:
                worker.start()
            await _until_caught_up(parts.pool, parts.event_log.topic, names, ends, on_progress, task, workers)
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


async def _until_caught_up(
    pool: asyncpg.Pool,
    topic: str,
    names: Sequence[str],
    ends: dict[int, int],
    on_progress: Progress | None,
    runner: asyncio.Task[None] | None = None,
    workers: Sequence[multiprocessing.process.BaseProcess] = (),
) -> None:
    total = sum(ends.values()) * len(names)
    while True:
        applied = 0
        async with pool.acquire() as conn:
            for name in names:
                done = await stored_positions(conn, name, topic)
                applied += sum(min(done.get(p, 0), end) for p, end in ends.items())
        if on_progress:
            on_progress(applied, total)
        if applied >= total:
            return
        if runner is not None and runner.done():
            runner.result()  # surfaces the runner's error
            raise RuntimeError(f"projections {', '.join(names)}: the replay stopped before catching up")
        for worker in workers:
            if worker.exitcode not in (None, 0):
                raise RuntimeError(
                    f"projections {', '.join(names)}: a replay process failed (exit {worker.exitcode}); "
                    "run the rebuild again"
                )
        await asyncio.sleep(0.05)


def _replay_in_a_process(settings: Settings, names: Sequence[str], partitions: Sequence[int]) -> None:
    tune_gc()
    asyncio.run(_replay(settings, names, partitions))


async def _replay(settings: Settings, names: Sequence[str], partitions: Sequence[int]) -> None:
    """Apply the log to `partitions` until each reaches the end it had when this started."""
    async with process_parts(settings, pool_size=len(names) + 1, durable_commits=False) as parts:
        ends = {p: end for p, end in (await parts.event_log.end_positions()).items() if p in partitions}
        stopping = asyncio.Event()
        reader = parts.log_reader(names, max_batch=REPLAY_BATCH, lane_batches=0, partitions=partitions)
        task = asyncio.create_task(reader.run(stopping))
        try:
            await _until_caught_up(parts.pool, parts.event_log.topic, names, ends, None, task)
        finally:
            stopping.set()
            await task
