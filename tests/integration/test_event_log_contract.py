"""What every event log promises, on Kafka and on Postgres alike, and in memory (the log of handler unit tests)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from modelreg.events.codec import decode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog, LogPosition, LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunStarted
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.settings import Settings

WRITER = Actor(kind="service", id="hammer")


@pytest.fixture(params=["kafka", "postgres", "memory"])
def log_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def log_settings(request: pytest.FixtureRequest, log_kind: str) -> Settings | None:
    """The conftest's settings (a fresh topic and database) for Kafka and Postgres; none for memory. Resolved in
    a plain fixture: the database is made by an async fixture, which cannot run inside the log's."""
    return None if log_kind == "memory" else request.getfixturevalue("settings")


@pytest.fixture
async def event_log(log_settings: Settings | None) -> AsyncIterator[EventLog]:
    log = InMemoryEventLog() if log_settings is None else event_log_for(log_settings)
    await log.start()
    yield log
    await log.close()


def numbered(writer: int, n: int) -> Envelope:
    payload = RunStarted(entity="acme", project="hammer", run_id=f"w{writer}-{n}")
    return Envelope.new(payload, stream=f"run:acme/hammer/w{writer}-s{n % 5}", actor=WRITER)


async def hammer(log: EventLog, writers: int, per_writer: int) -> None:
    """Concurrent appenders, each with its own streams, in batches of 1 to 5 events."""

    async def write(writer: int) -> None:
        rng = random.Random(writer)
        n = 0
        while n < per_writer:
            size = min(rng.randint(1, 5), per_writer - n)
            await log.append([numbered(writer, i) for i in range(n, n + size)])
            n += size

    await asyncio.gather(*(write(w) for w in range(writers)))


async def tail(log: EventLog, expected: int) -> list[LogRecord]:
    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return {p: 0 for p in partitions}

    subscription = await log.subscribe("contract-tail", from_zero)
    seen: list[LogRecord] = []
    try:
        while len(seen) < expected:
            seen.extend(await subscription.next_batch(1.0, 1000))
        seen.extend(await subscription.next_batch(0.5, 1000))  # nothing more may come
    finally:
        await subscription.close()
    return seen


async def assert_a_tailing_reader_sees_every_event_once_in_stream_order(
    log: EventLog, writers: int, per_writer: int
) -> None:
    expected = writers * per_writer
    reader = asyncio.create_task(tail(log, expected))
    await hammer(log, writers, per_writer)
    seen = await asyncio.wait_for(reader, 300)

    events = [decode(record.value) for record in seen]
    assert len({e.id for e in events}) == len(events) == expected
    by_stream: dict[str, list[int]] = defaultdict(list)
    for event in events:
        by_stream[event.stream].append(int(event.payload.run_id.split("-")[1]))
    assert all(numbers == sorted(numbers) for numbers in by_stream.values())


async def test_concurrent_appenders_and_a_tailing_reader_lose_nothing_and_keep_stream_order(
    event_log: EventLog,
) -> None:
    await assert_a_tailing_reader_sees_every_event_once_in_stream_order(event_log, writers=8, per_writer=500)


@pytest.mark.slow
async def test_eight_writers_and_100k_events_with_a_tailing_reader(event_log: EventLog) -> None:
    await assert_a_tailing_reader_sees_every_event_once_in_stream_order(event_log, writers=8, per_writer=12_500)


async def test_appended_events_come_back_with_their_positions_in_order(event_log: EventLog) -> None:
    events = [numbered(0, n) for n in range(20)]
    positions = await event_log.append(events)
    seen = await tail(event_log, 20)
    assert sorted(r.position for r in seen) == sorted(positions)
    assert [decode(r.value) for r in sorted(seen, key=lambda r: r.position)] == [
        e for _, e in sorted(zip(positions, events, strict=True))
    ]
    ends = await event_log.end_positions()
    assert sum(ends.values()) == 20


async def test_a_streams_events_share_one_partition_whether_appended_in_bulk_or_one_at_a_time(
    event_log: EventLog,
) -> None:
    # Kafka sends a large append as record batches it partitions itself, and a small one message by message
    # through the producer's partitioner: both must put a stream where the other does, or its order is lost.
    streams = [f"run:acme/hammer/bulk-{n}" for n in range(12)]

    def event(n: int, size: int = 0) -> Envelope:
        config = {"padding": "x" * size} if size else {}
        payload = RunStarted(entity="acme", project="hammer", run_id=f"r-{n}", config=config)
        return Envelope.new(payload, stream=streams[n % len(streams)], actor=WRITER)

    singles = [event(n) for n in range(len(streams))]
    # Some events of ~300 KB: a partition's share of the bulk append needs several batches.
    bulk = [event(n, size=300_000 if n % 7 == 0 else 0) for n in range(len(streams), 240)]
    positions = [p for e in singles[:6] for p in await event_log.append([e])]
    positions += await event_log.append(bulk)
    positions += [p for e in singles[6:] for p in await event_log.append([e])]
    appended = [*singles[:6], *bulk, *singles[6:]]

    seen = {record.position: record for record in await tail(event_log, len(appended))}
    assert sorted(seen) == sorted(positions)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for position, sent in zip(positions, appended, strict=True):
        record = seen[position]
        assert decode(record.value) == sent
        assert dict(record.headers)["type"] == sent.type.encode()
        partitions_of[sent.stream].add(position.partition)
    assert all(len(partitions) == 1 for partitions in partitions_of.values())
    for stream in streams:  # each stream's events in the order they were appended
        mine = [p for p, e in zip(positions, appended, strict=True) if e.stream == stream]
        assert mine == sorted(mine)


@pytest.mark.parametrize("log_kind", ["kafka"])
@pytest.mark.parametrize("count", [3, 20], ids=["one-by-one", "bulk"])
async def test_an_event_too_big_for_the_log_appends_nothing_and_the_log_takes_the_next_append(
    event_log: EventLog, count: int
) -> None:
    # Kafka refuses a record over its max.message.bytes. Refused by the broker inside a batch, it would
    # leave the idempotent producer out of sequence and failing every later append.
    stream = "run:acme/hammer/heavy"

    def event(n: int, size: int = 0) -> Envelope:
        config = {"padding": "x" * size} if size else {}
        payload = RunStarted(entity="acme", project="hammer", run_id=f"h-{n}", config=config)
        return Envelope.new(payload, stream=stream, actor=WRITER)

    events = [event(n, size=9 * 1024 * 1024 if n == count // 2 else 0) for n in range(count)]
    with pytest.raises(MessageSizeTooLargeError, match="nothing was appended"):
        await event_log.append(events)

    after = [event(100 + n) for n in range(20)]
    positions = await asyncio.wait_for(event_log.append(after), 60)
    positions += await asyncio.wait_for(event_log.append([event(200)]), 60)
    assert sum((await event_log.end_positions()).values()) == 21 == len(set(positions))


async def test_a_record_says_its_events_type_and_version_in_headers(event_log: EventLog) -> None:
    """What lets a projection pass over the events it does not handle without decoding them."""
    await event_log.append([numbered(0, 0)])
    [record] = await tail(event_log, 1)
    event = numbered(0, 0)
    assert dict(record.headers) == {"type": event.type.encode(), "version": str(event.version).encode()}


async def test_raw_records_come_back_with_their_bytes_key_and_headers(event_log: EventLog) -> None:
    foreign = LogRecord(
        position=LogPosition("elsewhere", 0, 41),  # where it was read from: append_raw ignores it
        key=b"run:acme/hammer/raw",
        value=b"not even json",
        headers=(("type", b"runs.run_started"), ("version", b"9")),
    )
    [position] = await event_log.append_raw([foreign])
    [record] = await tail(event_log, 1)
    assert (record.position, record.key, record.value) == (position, foreign.key, foreign.value)
    assert dict(record.headers) == dict(foreign.headers)


async def test_a_dead_lettered_record_is_kept_with_its_reason(event_log: EventLog) -> None:
    await event_log.append([numbered(0, 0)])
    [record] = await tail(event_log, 1)
    await event_log.dead_letter(record, "contract-reader", "cannot decode")
    [(kept, reason)] = await event_log.dead_lettered()
    assert (kept.position, kept.key, kept.value, reason) == (record.position, record.key, record.value, "cannot decode")
