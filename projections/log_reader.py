"""One reader of the log for all the projections of a process.

Each record is read and decoded once, then handed to every projection that handles its type. The
projections a batch concerns apply it in one transaction, each with its own positions, so a command's
event costs one BEGIN and one COMMIT, not one per projection; when anything in that transaction fails, each
projection applies the batch in a transaction of its own, exactly as a ProjectionRunner alone does
(runtime.py states the failure rules, and they do not change). The projections a batch does not concern
advance their positions without work, in one compare-and-set statement for all of them.

The reader reads each partition from the lowest position any of its projections needs. A projection that
must read a partition again (a failed batch, positions moved under it) asks the reader to seek back; the
others, already past those records, drop them before doing anything. Seeking forward for one projection
would skip records another still needs, so the reader never does: that projection drops what it has.

Following the log (`run`), a projection that is behind does not hold the others up: each has a lane, a short
queue of batches it applies in order while the reader reads and decodes the next ones and the quicker
projections apply them. A projection takes its part of a batch when its lane comes to it, so by then the reader
may have read past a seek that projection asked for, or had its partitions assigned again: each read carries
the partitions' epochs (one more per seek carried out and per assignment), and a projection takes only reads of
the epoch its latest seek or assignment started, each offset once. An assignment waits for the batch the
reader or a lane is applying, which was checked against the positions as they were when it was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import asyncpg

from modelreg.events.codec import UndecodableEvent
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, LogRecord, Subscription
from modelreg.events.written import RecentlyWritten
from modelreg.projections.runtime import (
    Decoded,
    MigratedBeyond,
    Plan,
    ProjectionRunner,
    advance_positions,
    decode_record,
    lock_positions,
    pass_over,
    type_tag,
)

log = logging.getLogger(__name__)

# The largest batch the projections apply in one transaction. A transaction saves round trips, which is what
# a small batch (a command's event) costs; a large one costs statements, and in transactions of their own the
# projections keep PostgreSQL busy on several cores at once.
TOGETHER_UP_TO = 200

# The most records a projector applies in one batch while it follows the log. Measured end to end (100,000
# events on Kafka, one projector process): 2,000 beat 5,000 in 5 of 6 interleaved pairs while the collector
# walked every 50,000 young objects, which walked a larger batch more often; since it walks every 1,000,000
# (services/projector.py), the two came out even in 6 pairs. Rebuilds replay in larger batches
# (services/rebuild.py).
FOLLOWING_BATCH = 2000

# How many batches a projection may fall behind the reader while following the log. The reader waits for the
# slowest lane, so memory stays bounded (this many batches per projection); two let the process decode the
# next batch and run the quicker projections while PostgreSQL writes the slowest one's. Measured end to end
# (100,000 events, one projector process), against the reader that waited for every projection: faster in
# 5 of 6 interleaved pairs (5,584 against 5,200 events/s on average). Rebuilds replay without lanes
# (services/rebuild.py): there, in 3 pairs, they cost 5 to 27% more CPU and were no faster.
LANE_BATCHES = 2


class SharedLogReader:
    def __init__(
        self,
        runners: Sequence[ProjectionRunner],
        log: EventLog,
        *,
        max_batch: int = FOLLOWING_BATCH,
        poll_timeout_s: float = 0.2,
        retry_parked_every_s: float = 5.0,
        partitions: Sequence[int] | None = None,
        written: RecentlyWritten | None = None,
        lane_batches: int = LANE_BATCHES,
    ) -> None:
        """`written`: what this process appended lately (its log's), read back without decoding. `lane_batches`:
        0 applies each batch to every projection before reading the next, as `step` does."""
        if not runners:
            raise ValueError("a log reader needs at least one projection")
        self.runners = list(runners)
        self.log = log
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.retry_parked_every_s = retry_parked_every_s
        self.partitions = partitions
        self.written = written
        self.lane_batches = lane_batches
        # Processes running the same projections share the partitions (one consumer group per set).
        self.reader = "projections." + ",".join(sorted(runner.name for runner in self.runners))
        self._subscription: Subscription | None = None
        self._next: dict[int, int] = {}  # the offset each partition will be read from next
        self._seeks: dict[int, int] = {}  # asked for during a round, carried out after it
        # A lane takes its batches after the reader has moved on, so what it takes is checked against two marks
        # per partition. The epoch counts the times the reader was sent back in a partition (a seek carried
        # out, an assignment): a read made before the projection's own latest seek or assignment took effect
        # is not what it asked to read, and applied now would pass for the records after a gap in the log.
        # The taken mark is the offset a projection takes from next: a record read twice (another
        # projection's re-read, queued batches put together) is taken once.
        self._epoch: dict[int, int] = {}
        self._from_epoch: dict[ProjectionRunner, dict[int, int]] = {runner: {} for runner in self.runners}
        self._taken: dict[ProjectionRunner, dict[int, int]] = {runner: {} for runner in self.runners}
        self._lanes: list[_Lane] = []  # while following the log (`run`)
        # Held from taking a batch until it is applied, when the reader applies it itself (`_apply_to_all`):
        # like a lane's, and for the same reason (start_positions).
        self._applying = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the log until `stopping` is set. A small batch read while every projection is idle (a
        command's event) is applied as `step` does, in one transaction; the others go through the lanes."""
        await self.open()
        lanes = [_Lane(runner, self.lane_batches, self.max_batch) for runner in self.runners if self.lane_batches]
        self._lanes = lanes
        last_retry = time.monotonic()
        try:
            while not stopping.is_set():
                for lane in lanes:
                    lane.raise_if_failed()
                read = await self._read()
                if read is not None and (
                    not lanes or len(read.records) <= TOGETHER_UP_TO and not any(lane.behind for lane in lanes)
                ):
                    await self._apply_to_all(read)
                elif read is not None:
                    for lane in lanes:
                        await lane.put(read)
                self._carry_out_seeks()
                await self._acknowledge()
                if time.monotonic() - last_retry >= self.retry_parked_every_s:
                    last_retry = time.monotonic()
                    for lane in lanes:
                        await lane.put(_RETRY_PARKED)
                    if not lanes:
                        for runner in self.runners:
                            await runner.retry_parked()
            for lane in lanes:  # what was read is applied before the reader lets go of its partitions
                await lane.finish()
        finally:
            # A lane stopped mid-batch rolls its transaction back; it lets go of its connection before the log
            # and the pool are closed under it.
            await asyncio.gather(*(lane.stop() for lane in lanes))
            self._lanes = []
            await self.close()

    async def open(self) -> None:
        for runner in self.runners:
            runner.share(_SeekThroughReader(self, runner))
        self._subscription = await self.log.subscribe(self.reader, self.start_positions, self.partitions)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def start_positions(self, partitions: list[int]) -> dict[int, int]:
        """Each projection's stored positions; the log is read from the lowest of them."""
        # The log calls this on every assignment: from within a read, or on Kafka from the consumer's coordinator
        # task while the reader or its lanes apply what they took earlier. A batch taken before would be checked
        # against the positions read now: after a reset (a rebuild), one starting past the stored position would
        # pass for the next one after a gap in the log. So whoever is applying finishes its batch first, and
        # takes nothing read before. Called from within a read, the reader itself holds no batch.
        async with contextlib.AsyncExitStack() as held:
            for lock in [self._applying, *(lane.applying for lane in self._lanes)]:
                await held.enter_async_context(lock)
            starts = [await runner.start_positions(partitions) for runner in self.runners]
            lowest = {p: min(start[p] for start in starts) for p in partitions}
            self._next.update(lowest)
            for p in partitions:
                self._epoch[p] = self._epoch.get(p, 0) + 1
            for runner, start in zip(self.runners, starts, strict=True):
                for p in partitions:
                    self._from_epoch[runner][p] = self._epoch[p]
                    self._taken[runner][p] = start[p]
            return lowest

    async def step(self, max_records: int | None = None) -> int:
        """Read one batch (waiting up to the poll timeout), apply it to every projection; returns how many
        records it had."""
        read = await self._read(max_records)
        if read is None:
            return 0
        await self._apply_to_all(read)
        self._carry_out_seeks()
        await self._acknowledge()
        return len(read.records)

    async def _read(self, max_records: int | None = None) -> _Read | None:
        """The next batch, decoded once for every projection that handles its types (None: nothing came)."""
        assert self._subscription is not None, "open() first"
        records = await self._subscription.next_batch(self.poll_timeout_s, max_records or self.max_batch)
        if not records:
            return None
        for record in records:
            self._next[record.position.partition] = record.position.offset + 1
        tags = [type_tag(record) for record in records]
        # Asked once per type in the batch, not once per record and projection: a batch has a few types.
        types = set(tags)
        concerned = {runner: {tag for tag in types if runner.concerns(tag)} for runner in self.runners}
        wanted = set().union(*concerned.values())
        events = [self._decode(record) if tag in wanted else None for record, tag in zip(records, tags, strict=True)]
        epochs = {p: self._epoch.get(p, 0) for p in {record.position.partition for record in records}}
        return _Read(records, tags, events, concerned, epochs, self._from_epoch, self._taken)

    async def _apply_to_all(self, read: _Read) -> None:
        async with self._applying:
            batches = [(runner, read.mine(runner)) for runner in self.runners]
            await self._apply([(runner, mine) for runner, mine in batches if mine])

    async def _acknowledge(self) -> None:
        assert self._subscription is not None, "open() first"
        await self._subscription.acknowledge(self._applied_by_all())

    def _decode(self, record: LogRecord) -> Envelope | UndecodableEvent:
        return (self.written and self.written.recall(record.value)) or decode_record(record)

    async def _apply(self, batches: list[tuple[ProjectionRunner, Decoded]]) -> None:
        """The projections a batch concerns apply it in one transaction, and those it has nothing for move
        their positions in that transaction's last statement. Per-projection transactions are what the
        failure rules are written for, and each projection still has its own positions in the shared one, so
        when anything in it fails (a handler's bug, a position moved, Postgres gone) it is rolled back and
        every projection applies its part alone, as a runner reading alone would. Without a shared
        transaction, the idle projections pass over in one statement of their own."""
        pool = self.runners[0].pool
        plans = {
            runner: plan
            for runner, mine in batches
            if runner.pool is pool
            and all(e is None for _, e in mine)
            # None: not contiguous with what the runner knows was stored; the full path checks and re-reads
            and (plan := runner.pass_over_plan(mine))
        }
        idle = [(runner, mine) for runner, mine in batches if runner in plans]
        busy = [(runner, mine) for runner, mine in batches if runner not in plans]
        together = (
            busy
            and len(busy) + len(idle) > 1
            and all(runner.pool is pool and len(mine) <= TOGETHER_UP_TO for runner, mine in busy)
            # A dead letter goes to the log before the commit: a rolled-back shared transaction would send
            # it again when its projection applies the batch alone.
            and not any(isinstance(event, UndecodableEvent) for _, mine in busy for _, event in mine)
        )
        if together:
            moved = await self._together(pool, busy, [(runner, mine, plans[runner]) for runner, mine in idle])
            if moved is not None:
                await asyncio.gather(*(runner.apply_or_reread(mine) for runner, mine in moved))
                return
        passed = await pass_over(pool, idle) if idle else set()
        busy += [(runner, mine) for runner, mine in idle if runner not in passed]
        await asyncio.gather(*(runner.apply_or_reread(mine) for runner, mine in busy))

    @staticmethod
    async def _together(
        pool: asyncpg.Pool,
        busy: list[tuple[ProjectionRunner, Decoded]],
        idle: list[tuple[ProjectionRunner, Decoded, Plan]],
    ) -> list[tuple[ProjectionRunner, Decoded]] | None:
        """One transaction for the batch. Returns the idle projections whose positions had moved (they take
        their batch through the full path, which re-reads), or None when the transaction failed."""
        # Positions rows are locked in the order of the projections' names in every process: two readers
        # sharing a partition during a rebalance wait for each other instead of deadlocking.
        busy = sorted(busy, key=lambda batch: batch[0].name)
        moved: list[tuple[ProjectionRunner, Decoded]] = []
        passing: list[tuple[ProjectionRunner, dict[int, int]]] = []
        try:
            async with pool.acquire() as conn, conn.transaction():
                wanted = {runner.name: runner.partitions_of(mine) for runner, mine in busy}
                wanted.update((runner.name, sorted(plan)) for runner, _, plan in idle)
                checks = [runner.migrations for runner, _ in busy] + [runner.migrations for runner, _, _ in idle]
                locked = await lock_positions(conn, busy[0][0].log.topic, wanted, checks)
                applied = [
                    await runner.apply_within(conn, mine, locked=locked[runner.name], advance=False)
                    for runner, mine in busy
                ]
                for runner, mine, plan in idle:
                    stored = locked[runner.name][0]
                    if all(stored.get(p) == expected for p, (_, expected) in plan.items()):
                        passing.append((runner, {p: ahead for p, (ahead, _) in plan.items()}))
                    else:
                        moved.append((runner, mine))
                await advance_positions(conn, applied, passing=[(r.name, offsets) for r, offsets in passing])
        except Exception as exc:
            log.debug("a batch did not apply in one transaction (%s): each projection applies it alone", exc)
            return None
        for (runner, _), result in zip(busy, applied, strict=True):
            await runner.committed(result)
        for runner, offsets in passing:
            runner.passed_over(offsets)
        return moved

    def seek(self, partition: int, offset: int, runner: ProjectionRunner) -> None:
        self._seeks[partition] = min(offset, self._seeks.get(partition, offset))
        # The runner takes only reads made once the seek is carried out (the read in flight and those its lane
        # holds were made before), from `offset` on. Carried out, the seek reads from `offset` or lower: the
        # reader never seeks forward, and reads on from below when it is there already.
        self._from_epoch[runner][partition] = self._epoch.get(partition, 0) + 1
        self._taken[runner][partition] = offset

    def _carry_out_seeks(self) -> None:
        for partition, offset in self._seeks.items():
            if offset < self._next.get(partition, offset + 1) and self._subscription is not None:
                self._next[partition] = offset
                self._subscription.seek(partition, offset)
            self._epoch[partition] = self._epoch.get(partition, 0) + 1
        self._seeks.clear()

    def _applied_by_all(self) -> dict[int, int]:
        lowest: dict[int, int] = {}
        for runner in self.runners:
            for partition, offset in runner.expected_positions.items():
                lowest[partition] = min(offset, lowest.get(partition, offset))
        return lowest


class _SeekThroughReader:
    """What a projection sharing the reader sees as its subscription: its seeks go to the reader."""

    def __init__(self, reader: SharedLogReader, runner: ProjectionRunner) -> None:
        self._reader = reader
        self._runner = runner

    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]:
        raise RuntimeError("a projection sharing a log reader is fed by it")

    def seek(self, partition: int, offset: int) -> None:
        self._reader.seek(partition, offset, self._runner)

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        pass  # the reader acknowledges what every projection applied

    async def close(self) -> None:
        pass


class _Read:
    """A batch as read and decoded once; each projection takes its part of it."""

    def __init__(
        self,
        records: Sequence[LogRecord],
        tags: Sequence[bytes | None],
        events: Sequence[Envelope | UndecodableEvent | None],
        concerned: dict[ProjectionRunner, set[bytes | None]],
        epochs: dict[int, int],
        from_epoch: dict[ProjectionRunner, dict[int, int]],
        taken: dict[ProjectionRunner, dict[int, int]],
    ) -> None:
        self.records = records
        self.tags = tags
        self.events = events
        self.concerned = concerned
        self.epochs = epochs  # each partition's epoch when the batch was read
        # The reader's marks, as they stand when a projection takes its part (SharedLogReader.__init__).
        self._from_epoch = from_epoch
        self._taken = taken

    def mine(self, runner: ProjectionRunner) -> Decoded:
        """Take the runner's part: its events decoded, the others None. Left out: what it applied or took
        already, and what was read before its latest seek took effect (the re-read brings those records in
        order: applied now, they would pass for the next ones after a gap in the log)."""
        expected = runner.expected_positions
        from_epoch = self._from_epoch[runner]
        taken = self._taken[runner]
        # Per partition, the lowest offset to take (None: read before the runner's latest seek took effect).
        floor = {
            p: max(expected.get(p, 0), taken.get(p, 0)) if epoch >= from_epoch.get(p, 0) else None
            for p, epoch in self.epochs.items()
        }
        concerned = self.concerned[runner]
        mine = [
            (record, event if tag in concerned else None)
            for record, tag, event in zip(self.records, self.tags, self.events, strict=True)
            if (low := floor[record.position.partition]) is not None and record.position.offset >= low
        ]
        marked: set[int] = set()
        for record, _ in reversed(mine):  # a partition's records come in order: its last one taken is the mark
            if record.position.partition not in marked:
                marked.add(record.position.partition)
                taken[record.position.partition] = record.position.offset + 1
                if len(marked) == len(floor):
                    break
        return mine


_RETRY_PARKED = object()  # put in a lane: the projection tries its parked streams between two batches
_FINISHED = object()


class _Lane:
    """The batches one projection has yet to apply, in the order read, and the task applying them."""

    def __init__(self, runner: ProjectionRunner, batches: int, most: int) -> None:
        self.runner = runner
        self.most = most  # records applied in one transaction, at most, when queued batches are put together
        self._queue: asyncio.Queue[_Read | object] = asyncio.Queue(batches)
        self._unfinished = 0
        self._reported = False  # the task's failure was raised to the reader
        # Held from taking a batch until it is applied: a batch taken before its partition was assigned again
        # would be checked against the positions the assignment reads (SharedLogReader.start_positions).
        self.applying = asyncio.Lock()
        self._task = asyncio.create_task(self._apply_in_order(), name=f"projection lane {runner.name}")

    @property
    def behind(self) -> bool:
        """True while the projection has a batch queued or being applied."""
        return self._unfinished > 0

    async def put(self, item: _Read | object) -> None:
        """Queue an item, waiting while the lane is full; raises if the lane stopped meanwhile."""
        self.raise_if_failed()
        self._unfinished += 1
        if not self._queue.full():
            self._queue.put_nowait(item)
            return
        putting = asyncio.ensure_future(self._queue.put(item))
        try:
            await asyncio.wait({putting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the reader is being stopped: leave no put pending
            putting.cancel()
            raise
        if not putting.done():  # the lane stopped with a full queue: nothing will take from it again
            putting.cancel()
            self.raise_if_failed()
            raise RuntimeError(f"projection {self.runner.name} stopped")

    def raise_if_failed(self) -> None:
        """A lane stops only on a bug (a failed batch is re-read, not raised): the reader stops with it."""
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            self._reported = True
            if isinstance(self._task.exception(), MigratedBeyond):
                raise self._task.exception()  # type: ignore[misc]  # its message says what to do: keep it whole
            raise RuntimeError(f"projection {self.runner.name} stopped") from self._task.exception()

    async def finish(self) -> None:
        await self.put(_FINISHED)
        await asyncio.wait({self._task})
        self.raise_if_failed()

    async def stop(self) -> None:
        """Cancel the lane's task and wait until it has stopped. What it raised reached the reader through
        `raise_if_failed`; `wait` raises neither that nor the task's cancellation, only the caller's own."""
        self._task.cancel()
        await asyncio.wait({self._task})
        if not self._task.cancelled() and not self._reported and (error := self._task.exception()) is not None:
            log.error("projection %s stopped", self.runner.name, exc_info=error)

    async def _apply_in_order(self) -> None:
        waiting: list[_Read | object] = []
        while True:
            item = waiting.pop(0) if waiting else await self._queue.get()
            taken = 1
            try:
                if item is _FINISHED:
                    return
                if item is _RETRY_PARKED:
                    await self.runner.retry_parked()
                    continue
                assert isinstance(item, _Read)
                async with self.applying:
                    mine = item.mine(self.runner)
                    # What queued up while the last batch was applied goes in one transaction, up to a batch's
                    # size, as a reader that waited for this projection would have read it in one batch.
                    while not waiting and not self._queue.empty():
                        more = self._queue.get_nowait()
                        if not isinstance(more, _Read) or len(mine) + len(more.records) > self.most:
                            waiting.append(more)
                            break
                        mine += more.mine(self.runner)
                        taken += 1
                    if mine:
                        await self.runner.apply_or_reread(mine)
            finally:
                self._unfinished -= taken
