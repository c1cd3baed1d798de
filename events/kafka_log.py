"""The event log on Kafka: one topic, key = stream id, idempotent producer, retention forever."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from modelreg.errors import Unavailable
from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition, LogRecord, StartPositions
from modelreg.events.written import RecentlyWritten

log = logging.getLogger(__name__)

# Room above the broker's 1 MB default for a large event (a run's environment: a git diff up to 512 KiB,
# the package list); the producer's max_request_size matches.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
TOPIC_CONFIG = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "max.message.bytes": str(MAX_MESSAGE_BYTES),
}

_PARTITIONER = DefaultPartitioner()


def _headers(event: Envelope) -> list[tuple[str, bytes]]:
    return [("type", event.type.encode()), ("version", str(event.version).encode())]


def _refuse_too_large(event: Envelope, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    """What the producer's `send` checks, done for every event before any is queued: a record batch is not
    checked, and the broker refusing one after its sequence numbers were taken breaks the idempotent
    producer for every later append."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > MAX_MESSAGE_BYTES:
        raise MessageSizeTooLargeError(
            f"a {event.type} event of {size} bytes is over the log's {MAX_MESSAGE_BYTES} bytes: nothing was appended"
        )


@contextmanager
def _unavailable_while_not_answering(doing: str) -> Iterator[None]:
    """A broker that does not answer (stopped, partitioned, electing a leader) as the retriable Unavailable a
    caller can act on: as aiokafka raised it, it reached GraphQL as an internal error with an incident id. Its
    timeout says nothing of whether an append landed, so the caller is told to send the same command again
    (its command id keeps it from being recorded twice). The broker's address stays in the server's log."""
    try:
        yield
    except KafkaError as exc:
        # KafkaTimeoutError is not flagged retriable by aiokafka, yet it is what a hanging broker raises.
        if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
            raise
        log.warning("the event log (Kafka) did not answer %s: %r", doing, exc)
        raise Unavailable(
            f"the event log (Kafka) is not answering: {doing} failed ({type(exc).__name__}), and the change may or "
            "may not be recorded: sent with a command id, send it again shortly (it is taken once); without one, "
            "check whether it was before sending it again"
        ) from exc


# From this many events, an append sends one record batch per partition (as many as their size needs) instead
# of one `send` per event: half the producer's CPU per event. Fewer go one by one, since concurrent commands'
# events then share the producer's open batch; a batch of our own waits for the partition's request in flight.
BATCHED_FROM = 16


class KafkaEventLog:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "modelreg.events",
        partitions: int = 6,
        replication_factor: int = 1,
        group_instance_id: str | None = None,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        # Static membership (Settings.kafka_instance_id): a member restarted under the same name takes its
        # partitions back at once; a member that dies holds them until its session times out.
        self.group_instance_id = group_instance_id
        self.session_timeout_ms = session_timeout_ms
        self.topic = topic
        self.dead_letter_topic = f"{topic}.deadletter"
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._producer: AIOKafkaProducer | None = None
        self._metadata: AIOKafkaConsumer | None = None
        self._partition_ids: list[int] = []
        self.written: RecentlyWritten | None = None

    async def start(self) -> None:
        await self.ensure_topics()
        # enable_idempotence forces acks=all and keeps retries from duplicating or reordering a partition.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            linger_ms=0,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_MESSAGE_BYTES,
        )
        await self._producer.start()
        # Group-less: only asks the broker for partition metadata and end offsets.
        self._metadata = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await self._metadata.start()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._metadata is not None:
            await self._metadata.stop()
            self._metadata = None

    async def ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, self.partitions, self.replication_factor, topic_configs=TOPIC_CONFIG)
                for name in (self.topic, self.dead_letter_topic)
                if name not in existing
            ]
            if wanted:
                try:
                    response = await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    response = None  # another process created it between our list and create
                for topic, code, *message in getattr(response, "topic_errors", ()):
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise RuntimeError(f"Kafka refused to create topic {topic}: error {code} {message}")
            # An existing topic keeps the partition count it was created with, whatever we were told.
            self._partition_ids = await self._partitions_of(admin)
        finally:
            await admin.close()

    async def _partitions_of(self, admin: AIOKafkaAdminClient) -> list[int]:
        # A topic created a moment ago may not have its partitions in the metadata yet.
        for _ in range(50):
            (described,) = await admin.describe_topics([self.topic])
            if described["partitions"]:
                return sorted(p["partition"] for p in described["partitions"])
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} has no partitions in the broker's metadata after 5s")

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        with _unavailable_while_not_answering("appending events"):
            return await self._append(events)

    async def _append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        producer = self._require_producer()
        # Every record built and checked before any is sent: one that cannot be, none is.
        records = [(event.stream.encode(), encode(event), _headers(event)) for event in events]
        for event, (key, value, headers) in zip(events, records, strict=True):
            _refuse_too_large(event, key, value, headers)
        if self.written is not None:
            for event, (_, value, _) in zip(events, records, strict=True):
                self.written.remember(value, event)
        if len(events) < BATCHED_FROM:
            return await self._send_each(producer, records)
        # Kafka's own partitioner (murmur2 of the key), so a stream stays on the partition every writer picks.
        partitions = sorted(await producer.partitions_for(self.topic))
        batches: dict[int, list[BatchBuilder]] = {}
        placed: list[tuple[int, int, int]] = []  # per event: its partition, batch there, and place in it
        for key, value, headers in records:
            partition = _PARTITIONER(key, partitions, partitions)
            mine = batches.setdefault(partition, [])
            if not mine or mine[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:
                mine.append(producer.create_batch())
                # An empty batch takes its first record whatever its size (the broker's limit still holds).
                if mine[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise RuntimeError(f"an event of {len(value)} bytes does not fit a record batch")
            placed.append((partition, len(mine) - 1, mine[-1].record_count() - 1))
        # A partition's batches go in order: the producer queues each behind the one before.
        sent = {
            (partition, n): await producer.send_batch(batch, self.topic, partition=partition)
            for partition, mine in batches.items()
            for n, batch in enumerate(mine)
        }
        stored = dict(zip(sent, await asyncio.gather(*sent.values()), strict=True))
        return [
            LogPosition(self.topic, partition, stored[(partition, n)].offset + place) for partition, n, place in placed
        ]

    async def _send_each(
        self, producer: AIOKafkaProducer, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
    ) -> list[LogPosition]:
        futures = [
            await producer.send(self.topic, value=value, key=key, headers=headers) for key, value, headers in records
        ]
        sent = await asyncio.gather(*futures)
        return [LogPosition(self.topic, meta.partition, meta.offset) for meta in sent]

    @property
    def partition_ids(self) -> list[int]:
        return list(self._partition_ids)

    async def append_raw(
        self, records: Sequence[LogRecord], partitions: Sequence[int] | None = None
    ) -> list[LogPosition]:
        """Append records as they are (bytes, key, headers), to the partitions given or by key."""
        producer = self._require_producer()
        futures = [
            await producer.send(
                self.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=partitions[i] if partitions is not None else None,
            )
            for i, record in enumerate(records)
        ]
        return [LogPosition(self.topic, meta.partition, meta.offset) for meta in await asyncio.gather(*futures)]

    async def end_positions(self) -> dict[int, int]:
        consumer = self._require_metadata_consumer()
        with _unavailable_while_not_answering("reading where the log ends"):
            ends = await consumer.end_offsets([TopicPartition(self.topic, p) for p in self._partition_ids])
        return {tp.partition: offset for tp, offset in ends.items()}

    async def subscribe(
        self, reader: str, start_positions: StartPositions, partitions: Sequence[int] | None = None
    ) -> KafkaSubscription:
        # Given partitions, the reader owns them outright (a rebuild worker): no group, no rebalances.
        grouped = partitions is None
        # Groups are not per topic: two installations sharing a cluster must not share a member's name.
        member = f"{self.group_instance_id}@{self.topic}" if grouped and self.group_instance_id else None
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=f"modelreg.{reader}" if grouped else None,
            group_instance_id=member,
            session_timeout_ms=self.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        subscription = KafkaSubscription(consumer, self.topic, grouped=grouped)
        try:
            if partitions is None:
                consumer.subscribe([self.topic], listener=_SeekToStoredPositions(consumer, self.topic, start_positions))
                await consumer.start()
            else:
                await consumer.start()
                consumer.assign([TopicPartition(self.topic, p) for p in partitions])
                for partition, offset in (await start_positions(list(partitions))).items():
                    subscription.seek(partition, offset)
        except BaseException:
            # start() runs the group's coordination in a task of its own: left behind, it would go on
            # heartbeating under this process's name beside the consumer that replaces it.
            await consumer.stop()
            raise
        return subscription

    async def dead_letter(self, record: LogRecord, reader: str, reason: str) -> None:
        position = record.position
        headers = [
            *record.headers,
            ("dlq.reason", reason.encode()[:4000]),
            ("dlq.reader", reader.encode()),
            ("dlq.source", f"{position.topic}/{position.partition}/{position.offset}".encode()),
        ]
        key, value = record.key, record.value
        # A record as large as the log takes (a foreign producer's) is over it with these headers: refused here, it
        # failed its batch, which was read again for ever, every projection that reads it stalled behind it. Its
        # bytes are left out then; they are at dlq.source, and in the reader's own dead letters (runtime.py).
        if DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) > MAX_MESSAGE_BYTES:
            key, value = None, b""
            headers.append(("dlq.left_out", b"key and value: over the log's limit with these headers"))
        if key is None and value is None:  # another producer's keyless tombstone: aiokafka sends none without either
            value = b""
        await self._require_producer().send_and_wait(self.dead_letter_topic, value=value, key=key, headers=headers)

    async def dead_lettered(self) -> list[tuple[LogRecord, str]]:
        """Everything on the dead-letter topic so far: each record as it was where it came from, and why."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(self.dead_letter_topic, p) for p in self._partition_ids]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp, start in (await consumer.beginning_offsets(partitions)).items():
                consumer.seek(tp, start)
            found: list[tuple[LogRecord, str]] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for msg in messages:
                        headers = dict(msg.headers or ())
                        topic, partition, offset = headers["dlq.source"].decode().rsplit("/", 2)
                        original = [(k, v) for k, v in msg.headers or () if not k.startswith("dlq.")]
                        source = LogPosition(topic, int(partition), int(offset))
                        found.append(
                            (LogRecord(source, msg.key, msg.value, tuple(original)), headers["dlq.reason"].decode())
                        )
            return found
        finally:
            await consumer.stop()

    def _require_metadata_consumer(self) -> AIOKafkaConsumer:
        if self._metadata is None:
            raise RuntimeError("KafkaEventLog.start() was not called")
        return self._metadata

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaEventLog.start() was not called")
        return self._producer


# Group offsets are advisory (positions live with the read models), so they go at most this often: a commit
# after every batch was a broker request per batch and per reader, and a round trip before the next fetch.
COMMIT_EVERY_S = 1.0


class KafkaSubscription:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str, *, grouped: bool) -> None:
        self._consumer = consumer
        self._topic = topic
        self._grouped = grouped
        self._last_commit = 0.0

    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]:
        fetched = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            LogRecord(
                LogPosition(tp.topic, tp.partition, msg.offset),
                msg.key,
                msg.value,
                tuple(msg.headers) if msg.headers else (),
            )
            for tp, messages in fetched.items()
            for msg in messages
        ]

    def seek(self, partition: int, offset: int) -> None:
        tp = TopicPartition(self._topic, partition)
        if tp in self._consumer.assignment():  # a partition revoked meanwhile is another reader's now
            self._consumer.seek(tp, offset)

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        if not self._grouped:  # a reader with its own partitions has no group offsets to commit
            return
        if time.monotonic() - self._last_commit < COMMIT_EVERY_S:
            return
        self._last_commit = time.monotonic()
        assigned = self._consumer.assignment()
        offsets = {
            tp: offset for p, offset in next_offsets.items() if (tp := TopicPartition(self._topic, p)) in assigned
        }
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), 5)
        except (KafkaError, TimeoutError) as exc:  # advisory only (lag tools read it); routine in a rebalance
            log.debug("group offset commit skipped: %s", exc)

    async def close(self) -> None:
        await self._consumer.stop()


class _SeekToStoredPositions(ConsumerRebalanceListener):
    """On every assignment, continue from the reader's own stored positions (not the group's offsets)."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, start_positions: StartPositions) -> None:
        self._consumer = consumer
        self._topic = topic
        self._start_positions = start_positions

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        mine = [tp.partition for tp in assigned if tp.topic == self._topic]
        if not mine:
            return
        for partition, offset in (await self._start_positions(mine)).items():
            self._consumer.seek(TopicPartition(self._topic, partition), offset)
