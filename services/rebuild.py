"""Rebuild projections from offset 0: forget their tables and positions, then replay the whole log.

Several projections rebuilt together share one reader of the log (each record decoded once). The replay
can be spread over several processes, each owning a share of the partitions: projections tolerate any
order between partitions, and each partition's position is its own. Those processes start and connect
before anything is reset, so that the read models are empty only while the log is applied.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import asyncpg

from modelreg.events.log import EventLog
from modelreg.projections.identity import IdentityProjection
from modelreg.projections.positions import reset, stored_positions
from modelreg.projections.runtime import Decoded, ProjectionRunner, decode_record, type_tag
from modelreg.services.bootstrap import ProcessParts, process_parts
from modelreg.services.projections_catalog import projection
from modelreg.services.projector import tune_gc
from modelreg.services.settings import Settings

Progress = Callable[[int, int], None]
# A replay reads full batches and applies each to every projection before reading the next: reading ahead
# (log_reader.LANE_BATCHES) cost it CPU and gained nothing.
REPLAY_BATCH = 20_000

# Which key is live, with which grants, and which teams and models are private is read from the identity tables on
# every request. Replayed batch by batch in front of a running API, they went through the log's past: emptied, then
# a key revoked long ago was live again until its revocation's turn came, a private team read by everyone until the
# event that made it private was replayed. Their events are few: they are read first, then applied in the transaction
# that resets the tables, so that requests see the tables as they were, then as rebuilt.
AT_ONCE = frozenset({IdentityProjection.name})


async def rebuild(
    settings: Settings, names: str | Sequence[str], *, processes: int = 1, on_progress: Progress | None = None
) -> float:
    """Returns the seconds the replay took (from the reset until every partition caught up).

    A projector running meanwhile notices the reset, seeks back and applies alongside: the position
    row locks keep every event applied once. The projections in AT_ONCE are reset and applied in one
    transaction, before the others.
    """
    if processes < 1:
        raise ValueError(f"--processes must be at least 1, got {processes}")
    names = [names] if isinstance(names, str) else list(names)
    targets = [projection(name) for name in names]  # an unknown name fails before anything is reset
    async with process_parts(settings, pool_size=len(names) + 2, durable_commits=False) as parts:
        started = time.perf_counter()
        for name in [name for name in names if name in AT_ONCE]:
            await _rebuilt_at_once(parts, name)
        names = [name for name in names if name not in AT_ONCE]
        targets = [target for target in targets if target.name not in AT_ONCE]
        if not names:
            return time.perf_counter() - started
        ends = await parts.event_log.end_positions()
        shares = [share for share in (sorted(ends)[i::processes] for i in range(processes)) if share]
        helpers = [_Helper.spawned(settings, names, share) for share in shares[1:]]
        stopping = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            # The helpers start (an interpreter each, its imports and connections) before the tables are
            # emptied: the read models stay empty only while events are applied.
            for helper in helpers:
                helper.start()
            await _until_ready(helpers)
            async with parts.pool.acquire() as conn, conn.transaction():
                for target in targets:
                    await reset(conn, target.name, target.tables)
            tune_gc()
            started = time.perf_counter()
            for helper in helpers:
                helper.line.send(GO)
            reader = parts.log_reader(names, max_batch=REPLAY_BATCH, lane_batches=0, partitions=shares[0])
            task = asyncio.create_task(reader.run(stopping))
            workers = [helper.process for helper in helpers]
            await _until_caught_up(parts.pool, parts.event_log.topic, names, ends, on_progress, task, workers)
            return time.perf_counter() - started
        except BaseException:
            # A rebuild that failed is run again: what its helpers would still apply is not worth waiting for
            # (and before the reset they have nothing to apply).
            for helper in helpers:
                if helper.process.pid is not None:
                    helper.process.terminate()
            raise
        finally:
            stopping.set()
            try:
                if task is not None:
                    await task
            finally:
                for helper in helpers:
                    if helper.process.pid is not None:
                        helper.process.join(30)
                        if helper.process.is_alive():
                            helper.process.terminate()


async def _rebuilt_at_once(parts: ProcessParts, name: str) -> None:
    """Read the records of the log the projection handles, then reset it and apply them in one transaction."""
    runner = ProjectionRunner(projection(name), parts.event_log, parts.pool)
    decoded = await _records_for(runner, parts.event_log)
    async with parts.pool.acquire() as conn, conn.transaction():
        await reset(conn, name, runner.projection.tables)
        if decoded:
            await runner.apply_in(conn, decoded, from_zero=True)


async def _records_for(runner: ProjectionRunner, log: EventLog) -> Decoded:
    """Every record up to the log's end now that the runner handles, decoded, and each partition's last record
    (its position is where the projection then stands)."""
    ends = {p: end for p, end in (await log.end_positions()).items() if end}
    if not ends:
        return []

    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    decoded: Decoded = []
    subscription = await log.subscribe(f"rebuild.{runner.name}", from_zero, sorted(ends))
    try:
        while ends:
            for record in await subscription.next_batch(1.0, REPLAY_BATCH):
                _, partition, offset = record.position
                if offset >= ends.get(partition, 0):
                    continue
                if runner.concerns(type_tag(record)):
                    decoded.append((record, decode_record(record)))
                elif offset == ends[partition] - 1:
                    decoded.append((record, None))
                if offset == ends[partition] - 1:
                    del ends[partition]
    finally:
        await subscription.close()
    return decoded


# What a helper and the rebuild say to each other on the helper's pipe. A pipe, not shared events: a process
# killed while it held an event's lock would leave the other side waiting forever, and the pipe's end of file
# tells a helper that the rebuild is gone.
READY, GO = "ready", "go"


@dataclass
class _Helper:
    """A process that replays a share of the partitions once told to go."""

    process: BaseProcess
    line: Connection  # our end of its pipe
    their_line: Connection  # its end, handed to it as it starts
    ready: bool = False

    @classmethod
    def spawned(cls, settings: Settings, names: Sequence[str], partitions: Sequence[int]) -> _Helper:
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=_replay_in_a_process, args=(settings, names, partitions, theirs))
        return cls(process, ours, theirs)

    def start(self) -> None:
        self.process.start()
        # Its end is its own now: once it exits, ours reads the end of file.
        self.their_line.close()

    def heard_ready(self) -> bool:
        """Whether it has said it is ready (once connected)."""
        if not self.ready and self.line.poll():
            try:
                self.ready = self.line.recv() == READY
            except EOFError:
                pass  # it exited: its exit code says so
        return self.ready


async def _until_ready(helpers: Sequence[_Helper], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not all([helper.heard_ready() for helper in helpers]):
        for helper in helpers:
            if helper.process.exitcode is not None:
                raise RuntimeError(
                    f"a replay process failed as it started (exit {helper.process.exitcode}): nothing was reset; "
                    "see its error above, or run the rebuild with --processes 1"
                )
        if time.monotonic() > deadline:
            waiting = sum(not helper.ready for helper in helpers)
            raise RuntimeError(
                f"{waiting} of {len(helpers)} replay processes were not connected to Kafka and PostgreSQL after "
                f"{timeout_s:.0f} s: nothing was reset; check that this host reaches both, or run the rebuild "
                "with --processes 1"
            )
        await asyncio.sleep(0.02)


async def _until_caught_up(
    pool: asyncpg.Pool,
    topic: str,
    names: Sequence[str],
    ends: dict[int, int],
    on_progress: Progress | None,
    runner: asyncio.Task[None] | None = None,
    workers: Sequence[BaseProcess] = (),
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


def _replay_in_a_process(settings: Settings, names: Sequence[str], partitions: Sequence[int], line: Connection) -> None:
    tune_gc()
    asyncio.run(_replay(settings, names, partitions, line))


async def _replay(settings: Settings, names: Sequence[str], partitions: Sequence[int], line: Connection) -> None:
    """Once told to go (the tables reset), apply the log to `partitions` until each reaches the end it had then."""
    async with process_parts(settings, pool_size=len(names) + 1, durable_commits=False) as parts:
        line.send(READY)
        while not line.poll():
            await asyncio.sleep(0.01)
        try:
            if line.recv() != GO:
                return
        except EOFError:
            return  # the rebuild ended before the reset
        ends = {p: end for p, end in (await parts.event_log.end_positions()).items() if p in partitions}
        stopping = asyncio.Event()
        reader = parts.log_reader(names, max_batch=REPLAY_BATCH, lane_batches=0, partitions=partitions)
        task = asyncio.create_task(reader.run(stopping))
        try:
            await _until_caught_up(parts.pool, parts.event_log.topic, names, ends, None, task)
        finally:
            stopping.set()
            await task
