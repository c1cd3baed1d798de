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
"""

from __future__ import annotations

import asyncio
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
    ) -> None:
        """`written`: what this process appended lately (its log's), read back without decoding."""
        if not runners:
            raise ValueError("a log reader needs at least one projection")
        self.runners = list(runners)
        self.log = log
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.retry_parked_every_s = retry_parked_every_s
        self.partitions = partitions
        self.written = written
        # Processes running the same projections share the partitions (one consumer group per set).
        self.reader = "projections." + ",".join(sorted(runner.name for runner in self.runners))
        self._subscription: Subscription | None = None
        self._next: dict[int, int] = {}  # the offset each partition will be read from next
        self._seeks: dict[int, int] = {}  # asked for during a round, carried out after it

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the log until `stopping` is set."""
        await self.open()
        last_retry = time.monotonic()
        try:
            while not stopping.is_set():
                await self.step()
                if time.monotonic() - last_retry >= self.retry_parked_every_s:
                    last_retry = time.monotonic()
                    for runner in self.runners:
                        await runner.retry_parked()
        finally:
            await self.close()

    async def open(self) -> None:
        for runner in self.runners:
            runner.share(_SeekThroughReader(self))
        self._subscription = await self.log.subscribe(self.reader, self.start_positions, self.partitions)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def start_positions(self, partitions: list[int]) -> dict[int, int]:
        """Each projection's stored positions; the log is read from the lowest of them."""
        starts = [await runner.start_positions(partitions) for runner in self.runners]
        lowest = {p: min(start[p] for start in starts) for p in partitions}
        self._next.update(lowest)
        return lowest

    async def step(self, max_records: int | None = None) -> int:
        """Read one batch (waiting up to the poll timeout), apply it to every projection; returns how many
        records it had."""
        assert self._subscription is not None, "open() first"
        records = await self._subscription.next_batch(self.poll_timeout_s, max_records or self.max_batch)
        if not records:
            return 0
        for record in records:
            self._next[record.position.partition] = record.position.offset + 1
        tags = [type_tag(record) for record in records]
        # Asked once per type in the batch, not once per record and projection: a batch has a few types.
        types = set(tags)
        concerned = {runner: {tag for tag in types if runner.concerns(tag)} for runner in self.runners}
        wanted = set().union(*concerned.values())
        events = [self._decode(record) if tag in wanted else None for record, tag in zip(records, tags, strict=True)]
        batches = [(runner, self._mine(runner, records, tags, events, concerned[runner])) for runner in self.runners]
        await self._apply([(runner, mine) for runner, mine in batches if mine])
        self._carry_out_seeks()
        await self._subscription.acknowledge(self._applied_by_all())
        return len(records)

    def _decode(self, record: LogRecord) -> Envelope | UndecodableEvent:
        return (self.written and self.written.recall(record.value)) or decode_record(record)

    @staticmethod
    def _mine(
        runner: ProjectionRunner,
        records: Sequence[LogRecord],
        tags: Sequence[bytes | None],
        events: Sequence[Envelope | UndecodableEvent | None],
        concerned: set[bytes | None],
    ) -> Decoded:
        expected = runner.expected_positions
        return [
            (record, event if tag in concerned else None)
            for record, tag, event in zip(records, tags, events, strict=True)
            # Read again for another projection: this one applied it already.
            if record.position.offset >= expected.get(record.position.partition, 0)
        ]

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
                locked = await lock_positions(conn, busy[0][0].log.topic, wanted)
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

    def seek(self, partition: int, offset: int) -> None:
        self._seeks[partition] = min(offset, self._seeks.get(partition, offset))

    def _carry_out_seeks(self) -> None:
        for partition, offset in self._seeks.items():
            if offset < self._next.get(partition, offset + 1) and self._subscription is not None:
                self._next[partition] = offset
                self._subscription.seek(partition, offset)
        self._seeks.clear()

    def _applied_by_all(self) -> dict[int, int]:
        lowest: dict[int, int] = {}
        for runner in self.runners:
            for partition, offset in runner.expected_positions.items():
                lowest[partition] = min(offset, lowest.get(partition, offset))
        return lowest


class _SeekThroughReader:
    """What a projection sharing the reader sees as its subscription: its seeks go to the reader."""

    def __init__(self, reader: SharedLogReader) -> None:
        self._reader = reader

    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]:
        raise RuntimeError("a projection sharing a log reader is fed by it")

    def seek(self, partition: int, offset: int) -> None:
        self._reader.seek(partition, offset)

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        pass  # the reader acknowledges what every projection applied

    async def close(self) -> None:
        pass
