"""Moving a registry's event log: to Kafka (`migrate-log`), to a file and back (`export`, `import`).

Events are copied as the bytes they were written as, so ids, timestamps and actors survive unchanged.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from modelreg.events.kafka_log import KafkaEventLog
from modelreg.events.log import EventLog, LogPosition, LogRecord
from modelreg.events.postgres_log import PostgresEventLog
from modelreg.services.projections_catalog import PROJECTIONS
from modelreg.services.rebuild import rebuild
from modelreg.services.settings import Settings

Progress = Callable[[int], None]
SOURCE_HEADER = "modelreg.source_position"
CHUNK = 5_000


async def records_of(log: EventLog, chunk: int = CHUNK) -> AsyncIterator[list[LogRecord]]:
    """Every record of the log, in chunks, partition by partition, each partition in order."""
    ends = await log.end_positions()

    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return {p: 0 for p in partitions}

    for partition, end in sorted(ends.items()):
        if end == 0:
            continue
        subscription = await log.subscribe("log-transfer", from_zero, [partition])
        try:
            done = 0
            while done < end:
                batch = [r for r in await subscription.next_batch(1.0, chunk) if r.position.offset < end]
                done = batch[-1].position.offset + 1 if batch else done
                if batch:
                    yield batch
        finally:
            await subscription.close()


async def migrate_to_kafka(
    source: PostgresEventLog, target: KafkaEventLog, on_progress: Progress, chunk: int = CHUNK
) -> int:
    """Copy every event, in order, to Kafka; returns how many were copied now.

    Safe to interrupt and run again: each copied message carries its source position, and a partition
    already holding position n is not sent anything up to n again.
    """
    copied_through = await _copied_through(target)
    partitioner = DefaultPartitioner()
    partitions = target.partition_ids
    copied = 0
    async for batch in records_of(source, chunk):
        todo: list[LogRecord] = []
        targets: list[int] = []
        for record in batch:
            # The partition Kafka's default partitioner chooses for the key: a stream stays together.
            partition = partitioner(record.key, partitions, partitions)
            if record.position.offset > copied_through[partition]:
                headers = (*record.headers, (SOURCE_HEADER, str(record.position.offset).encode()))
                todo.append(record._replace(headers=headers))
                targets.append(partition)
        await target.append_raw(todo, targets)
        copied += len(todo)
        on_progress(len(batch))
    return copied


async def _copied_through(target: KafkaEventLog) -> dict[int, int]:
    """The source position of the last message in each target partition (-1 where there is none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=target.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(target.topic, p) for p in target.partition_ids]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        through = {tp.partition: -1 for tp in partitions}
        for tp, end in ends.items():
            if end == 0:
                continue
            consumer.seek(tp, end - 1)
            messages = (await consumer.getmany(tp, timeout_ms=10_000)).get(tp, [])
            if not messages:
                raise RuntimeError(f"could not read the last message of {tp}: is the broker healthy?")
            headers = dict(messages[-1].headers or ())
            if SOURCE_HEADER not in headers:
                raise RuntimeError(
                    f"topic {target.topic} already holds events that did not come from this migration: "
                    "migrate into a new topic (--topic)"
                )
            through[tp.partition] = int(headers[SOURCE_HEADER])
        return through
    finally:
        await consumer.stop()


async def export_log(log: EventLog, path: Path, on_progress: Progress) -> int:
    """Write every record as one JSON line (gzip), from which `import_log` gives back its bytes (`_line`)."""
    count = 0
    with gzip.open(path, "wb") as out:
        async for batch in records_of(log):
            for record in batch:
                out.write(orjson.dumps(_line(record)) + b"\n")
            count += len(batch)
            on_progress(len(batch))
    return count


def _line(record: LogRecord) -> dict[str, object]:
    """A record as a line that gives back its key, value and headers byte for byte: an event as JSON where it
    reads back as the same bytes (every event modelreg writes), anything else (a foreign producer's bytes, JSON
    spelt otherwise, no value at all) as base64; a key that is not UTF-8 as base64 too; headers only where they
    are not the ones an event's type and version give (which import writes again)."""
    line: dict[str, object] = {"key": None}
    if record.key is not None:
        try:
            line["key"] = record.key.decode()
        except UnicodeDecodeError:
            line["key_base64"] = base64.b64encode(record.key).decode()
    line["raw"] = None if record.value is None else base64.b64encode(record.value).decode()
    if record.value is not None:
        try:
            event = orjson.loads(record.value)
            if orjson.dumps(event) == record.value:
                del line["raw"]
                line["event"] = event
        except orjson.JSONDecodeError:
            pass
    headers = tuple(record.headers)
    if headers != _type_headers(line.get("event")):
        line["headers"] = [[name, base64.b64encode(value).decode()] for name, value in headers]
    return line


def _record(item: dict[str, Any], topic: str, index: int) -> LogRecord:
    """`_line`'s record back."""
    if "event" in item:
        value: bytes | None = orjson.dumps(item["event"])
    else:
        value = None if item["raw"] is None else base64.b64decode(item["raw"])
    if "key_base64" in item:
        key: bytes | None = base64.b64decode(item["key_base64"])
    else:
        key = None if item["key"] is None else item["key"].encode()
    if "headers" in item:
        headers = tuple((name, base64.b64decode(value)) for name, value in item["headers"])
    else:
        headers = _type_headers(item.get("event"))
    return LogRecord(LogPosition(topic, 0, index), key, value, headers)


async def import_log(log: EventLog, path: Path, on_progress: Progress) -> int:
    """Append every event of an export to an empty log, in order."""
    if sum((await log.end_positions()).values()):
        raise RuntimeError("the target event log is not empty: import into a fresh install")
    count = 0
    chunk: list[LogRecord] = []
    with gzip.open(path, "rb") as lines:
        for line in lines:
            chunk.append(_record(orjson.loads(line), log.topic, count))
            count += 1
            if len(chunk) == CHUNK:
                await log.append_raw(chunk)
                on_progress(len(chunk))
                chunk = []
    await log.append_raw(chunk)
    on_progress(len(chunk))
    return count


def _type_headers(event: object) -> tuple[tuple[str, bytes], ...]:
    if isinstance(event, dict) and "type" in event and "version" in event:
        return (("type", str(event["type"]).encode()), ("version", str(event["version"]).encode()))
    return ()


async def migrate_log(source: Settings, target: Settings, on_progress: Progress) -> int:
    """Copy the Postgres log to Kafka, then rebuild every projection from Kafka, so that the read models
    stand at Kafka's positions and a server on Kafka continues with nothing lost and nothing twice."""
    source_log = PostgresEventLog(source.database_url, source.topic)
    target_log = KafkaEventLog(
        target.kafka_bootstrap_servers or "",
        target.topic,
        target.partitions,
        create_topic=target.missing_topic == "create",
    )
    await source_log.start()
    await target_log.start()
    try:
        copied = await migrate_to_kafka(source_log, target_log, on_progress)
    finally:
        await target_log.close()
        await source_log.close()
    for name in PROJECTIONS:
        await rebuild(target, name)
    return copied
