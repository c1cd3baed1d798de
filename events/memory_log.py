"""An in-memory event log for unit tests of the write side (tests/support/write_side.py). Same Protocols as the
Kafka and Postgres logs, and held to the same contract (tests/integration/test_event_log_contract.py)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition, LogRecord, StartPositions
from modelreg.events.written import RecentlyWritten


class InMemoryEventLog:
    kind = "memory"

    def __init__(self, topic: str = "modelreg.events", partitions: int = 3) -> None:
        self.topic = topic
        self.partitions: list[list[LogRecord]] = [[] for _ in range(partitions)]
        self.dead_letters: list[tuple[LogRecord, str, str]] = []
        self._appended_in_order: list[LogRecord] = []
        self._appended = asyncio.Condition()
        self.written: RecentlyWritten | None = None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        positions = []
        values = [encode(event) for event in events]  # all before any is kept, as the other logs do
        for event, value in zip(events, values, strict=True):
            if self.written is not None:
                self.written.remember(value, event)
            headers = (("type", event.type.encode()), ("version", str(event.version).encode()))
            positions.append(self._put(event.stream.encode(), value, headers))
        await self._announce()
        return positions

    async def _announce(self) -> None:
        async with self._appended:
            self._appended.notify_all()

    def _put(self, key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> LogPosition:
        partition = zlib.crc32(key or b"") % len(self.partitions)
        records = self.partitions[partition]
        position = LogPosition(self.topic, partition, len(records))
        record = LogRecord(position, key, value, headers)
        records.append(record)
        self._appended_in_order.append(record)
        return position

    def events(self) -> list[LogRecord]:
        """Every record, in the order it was appended (across partitions too, which no reader sees)."""
        return list(self._appended_in_order)

    async def end_positions(self) -> dict[int, int]:
        return {p: len(records) for p, records in enumerate(self.partitions)}

    async def subscribe(
        self, reader: str, start_positions: StartPositions, partitions: Sequence[int] | None = None
    ) -> InMemorySubscription:
        starts = await start_positions(
            list(partitions) if partitions is not None else list(range(len(self.partitions)))
        )
        return InMemorySubscription(self, starts)

    async def dead_letter(self, record: LogRecord, reader: str, reason: str) -> None:
        self.dead_letters.append((record, reader, reason))

    async def dead_lettered(self) -> list[tuple[LogRecord, str]]:
        return [(record, reason) for record, _, reason in self.dead_letters]

    async def append_raw(self, records: Sequence[LogRecord]) -> list[LogPosition]:
        positions = [self._put(record.key, record.value, tuple(record.headers)) for record in records]
        await self._announce()
        return positions


class InMemorySubscription:
    def __init__(self, log: InMemoryEventLog, starts: dict[int, int]) -> None:
        self._log = log
        self._next = dict(starts)

    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]:
        batch = self._take(max_records)
        if not batch:
            async with self._log._appended:
                try:
                    await asyncio.wait_for(self._log._appended.wait(), timeout_s)
                except TimeoutError:
                    return []
            batch = self._take(max_records)
        return batch

    def _take(self, max_records: int) -> list[LogRecord]:
        batch: list[LogRecord] = []
        for partition, records in enumerate(self._log.partitions):
            if partition not in self._next:
                continue
            start = self._next[partition]
            taken = records[start : start + max_records - len(batch)]
            batch.extend(taken)
            self._next[partition] = start + len(taken)
        return batch

    def seek(self, partition: int, offset: int) -> None:
        self._next[partition] = offset

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        pass

    async def close(self) -> None:
        pass
