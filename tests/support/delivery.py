"""Records on partitions and the batches a Kafka consumer may receive from them, for tests that replay a
history in an order they choose (the log itself is in memory)."""

from __future__ import annotations

import random
import zlib

from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition, LogRecord


def partitioned_by_stream(events: list[Envelope], partitions: int, topic: str = "events") -> list[list[LogRecord]]:
    """The events as records on `partitions` partitions, keyed by stream as the Kafka log keys them."""
    placed: list[list[LogRecord]] = [[] for _ in range(partitions)]
    for event in events:
        put(placed, zlib.crc32(event.stream.encode()) % partitions, event, topic)
    return placed


def put(partitions: list[list[LogRecord]], p: int, event: Envelope, topic: str = "events") -> None:
    """Appends the event to partition p at the next offset."""
    position = LogPosition(topic, p, len(partitions[p]))
    partitions[p].append(LogRecord(position, event.stream.encode(), encode(event)))


def interleaved(
    partitions: list[list[LogRecord]], rnd: random.Random, redelivered: float = 0.0
) -> list[list[LogRecord]]:
    """Batches as a consumer may see them: partitions interleaved, each in order; with `redelivered` > 0,
    that share of batches comes twice (as after a rebalance)."""
    cursors = [0] * len(partitions)
    batches = []
    while any(c < len(records) for c, records in zip(cursors, partitions, strict=True)):
        batch = []
        for _ in range(rnd.randint(1, 40)):
            live = [p for p in range(len(partitions)) if cursors[p] < len(partitions[p])]
            if not live:
                break
            p = rnd.choice(live)
            batch.append(partitions[p][cursors[p]])
            cursors[p] += 1
        batches.append(batch)
        if redelivered and rnd.random() < redelivered:
            batches.append(batch)
    return batches


def in_order(partitions: list[list[LogRecord]]) -> list[list[LogRecord]]:
    """One batch: each partition whole, one after the other."""
    return [[record for records in partitions for record in records]]
