"""Everything on a test's event log, read from the start, as raw records."""

from __future__ import annotations

from modelreg.events.log import EventLog, LogRecord


async def all_records(log: EventLog) -> list[LogRecord]:
    ends = await log.end_positions()

    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return {p: 0 for p in partitions}

    subscription = await log.subscribe("test-log-contents", from_zero)
    records: list[LogRecord] = []
    seen: dict[int, int] = {}
    quiet = 0
    try:
        # Done when every partition has reached its end; ten quiet polls in a row end it too (a gap at the end).
        while any(seen.get(p, 0) < end for p, end in ends.items()) and quiet < 10:
            batch = await subscription.next_batch(1.0, 10_000)
            quiet = 0 if batch else quiet + 1
            for record in batch:
                records.append(record)
                seen[record.position.partition] = record.position.offset + 1
    finally:
        await subscription.close()
    return records
