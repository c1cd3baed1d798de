"""The event log on Kafka: one topic, key = stream id, idempotent producer, retention forever.

While the broker is known to be away, an append is refused UNAVAILABLE before any of its records is handed to the
producer (nothing recorded); one handed to it is waited for at most a bound, then answered UNAVAILABLE (it may or may
not be recorded): the producer keeps its records and writes them, whole and in order, when the broker answers. The
broker's outages are said once each way (broker_watch.py), aiokafka's own lines about them once a minute
(kafka_lines.py)."""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from collections.abc import Awaitable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata

from modelreg.events.broker_watch import BrokerWatch
from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.kafka_lines import summarise_repeated_lines
from modelreg.events.log import EventLogNotAnswering, LogPosition, LogRecord, StartPositions, TopicMissing
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
_Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


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


def _not_answering(
    doing: str, exc: BaseException, *, where: str, recording: bool, still_held: Awaitable[object] | None = None
) -> EventLogNotAnswering:
    broker = f"Kafka at {where}" if where else "Kafka"
    what_happened = f"the event log ({broker}) did not answer {doing} ({exc})"  # aiokafka's errors name their type
    # What was asked is in the line's template: each kind is summarised on its own (kafka_lines.py).
    log.warning(f"the event log ({broker}) did not answer {doing} (%s)", exc)
    outcome = (
        "the change may or may not be recorded: sent with a commandId, send it again with the same one (it is "
        "taken once); without one, check whether it was before sending it again"
        if recording
        else "nothing was changed: send it again shortly"
    )
    return EventLogNotAnswering(
        f"the event log (Kafka) is not answering: {doing} failed ({type(exc).__name__}), and {outcome}",
        what_happened,
        still_held=still_held,
    )


@contextmanager
def _unavailable_while_not_answering(doing: str, *, where: str = "", recording: bool = True) -> Iterator[None]:
    """A broker that does not answer (stopped, partitioned, electing a leader) as the retriable Unavailable a
    caller can act on: as aiokafka raised it, it reached GraphQL as an internal error with an incident id. An
    append's timeout says nothing of whether it landed, so the caller is told to send the same command again (its
    command id keeps it from being recorded twice); a read (`recording=False`) changed nothing. The broker's address
    (`where`) is the installation's own: in the server's log and `what_happened`, not in the caller's answer."""
    try:
        yield
    except KafkaError as exc:
        # KafkaTimeoutError is not flagged retriable by aiokafka, yet it is what a hanging broker raises.
        if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
            raise
        raise _not_answering(doing, exc, where=where, recording=recording) from exc


def _named(topics: set[str], near: str = "") -> str:
    """The topics an installation could use, for a person to choose from: not Kafka's own, nor dead-letter ones; those
    whose names are nearest `near` first (a mistyped name's own among them, on a cluster of hundreds of topics)."""
    names = sorted(t for t in topics if not t.startswith("__") and not t.endswith(".deadletter"))
    nearest = difflib.get_close_matches(near, names, n=5, cutoff=0.6) if near else []
    names = nearest + [name for name in names if name not in nearest]
    shown = ", ".join(names[:20])
    return f"{shown} and {len(names) - 20} more" if len(names) > 20 else shown


async def _acknowledged(futures: Iterable[Awaitable[RecordMetadata]]) -> list[RecordMetadata]:
    """Each send's acknowledgement, in order; the first failure raised once every send has its outcome (one left
    unread would be logged as an error of its own)."""
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[RecordMetadata], outcomes)


# From this many events, an append sends one record batch per partition (as many as their size needs) instead
# of one `send` per event: half the producer's CPU per event. Fewer go one by one, since concurrent commands'
# events then share the producer's open batch; a batch of our own waits for the partition's request in flight.
BATCHED_FROM = 16


# How long an append's caller waits for the broker's acknowledgement, and a read of where the log ends for its answer,
# before it is answered UNAVAILABLE. aiokafka waited for ever for an append (its idempotent producer retries until a
# broker takes the record) and 40 s for a read. A broker that answers takes milliseconds; a leader's failover on a
# cluster of several takes a few seconds, over which a command is refused and sent again (retriable). The records
# of an append past it stay with the producer (it never fails them, nor may we: other records of the same append
# may be on their way already, and a command written in part is a change acknowledged and never recorded on a
# retry); it writes them in order when the broker answers.
ANSWERED_WITHIN_S = 5.0


def consumer_internals_missing(consumer: AIOKafkaConsumer) -> list[str]:
    """What of aiokafka's internals KafkaSubscription.close relies on `consumer` lacks: none on 0.14 (pyproject.toml
    pins it). Checked when the log starts, rather than failing as a projector stops during an outage."""
    if callable(getattr(getattr(consumer, "_client", None), "close", None)):
        return []
    return ["AIOKafkaConsumer._client.close"]


class AiokafkaInternalsMissing(RuntimeError):
    def __init__(self, missing: list[str]) -> None:
        import aiokafka

        super().__init__(
            f"aiokafka {aiokafka.__version__} lacks what the event log relies on of its internals (checked against "
            f"0.14, events/kafka_log.py): {', '.join(missing)}. Install the aiokafka pyproject.toml names"
        )


class KafkaEventLog:
    kind = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "modelreg.events",
        partitions: int = 6,
        replication_factor: int = 1,
        group_instance_id: str | None = None,
        session_timeout_ms: int = 10_000,
        *,
        create_topic: bool = False,
        projected_topics: Collection[str] = (),
        answered_within_s: float = ANSWERED_WITHIN_S,
    ) -> None:
        """`create_topic`: make the topic (and its dead-letter topic) when it does not exist; else it is refused
        (TopicMissing), as a mistyped name is: a reader that made one read an empty log and said all was well.
        `projected_topics`: those the process's database holds read models of (projections/positions.py). A topic
        missing beside them is not created either: it is a mistyped name, not a new installation's log (an API
        made one, took commands no projector would apply, and a projector on it wrote them beside the real ones)."""
        self.bootstrap_servers = bootstrap_servers
        # Static membership (Settings.kafka_instance_id): a member restarted under the same name takes its
        # partitions back at once; a member that dies holds them until its session times out.
        self.group_instance_id = group_instance_id
        self.session_timeout_ms = session_timeout_ms
        self.topic = topic
        self.dead_letter_topic = f"{topic}.deadletter"
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.create_topic = create_topic
        self.projected_topics = frozenset(projected_topics)
        self.answered_within_s = answered_within_s
        self._producer: AIOKafkaProducer | None = None
        self._metadata: AIOKafkaConsumer | None = None
        # Whether the broker is away: its watch's questions, and every append and read of where the log ends, tell it.
        self.broker = BrokerWatch(bootstrap_servers, self._end_positions, within_s=min(3.0, answered_within_s))
        self._watch: asyncio.Task[None] | None = None
        self._partition_ids: list[int] = []
        self.written: RecentlyWritten | None = None

    async def start(self) -> None:
        summarise_repeated_lines(self.bootstrap_servers)
        await self.ensure_topics()
        # enable_idempotence forces acks=all and keeps retries from duplicating or reordering a partition.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            linger_ms=0,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_MESSAGE_BYTES,
        )
        await producer.start()
        self._producer = producer
        # Group-less: only asks the broker for partition metadata and end offsets.
        self._metadata = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        if missing := consumer_internals_missing(self._metadata):
            raise AiokafkaInternalsMissing(missing)
        await self._metadata.start()
        self._watch = asyncio.create_task(self.broker.run())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.wait([self._watch])
            self._watch = None
        if self._producer is not None:
            # As main did: what it holds is sent first (a broker away: the process's own bound on closing ends it).
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
            if self.topic not in existing and not self.create_topic:
                raise TopicMissing(self._missing(existing))
            if self.topic not in existing and self.projected_topics and self.topic not in self.projected_topics:
                raise TopicMissing(self._beside_another_log(existing))
            if self.topic not in existing and self.topic in self.projected_topics and self.create_topic:
                raise TopicMissing(self._deleted())
            # A dead-letter topic missing beside its log is made whoever asks: it is that installation's.
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
                if self.topic not in existing:
                    others = _named(existing) or "none"
                    log.warning(
                        "created topic %s and %s on Kafka at %s (%d partitions): a new installation's event log "
                        "(the cluster's other topics: %s)",
                        self.topic,
                        self.dead_letter_topic,
                        self.bootstrap_servers,
                        self.partitions,
                        others,
                    )
            # An existing topic keeps the partition count it was created with, whatever we were told.
            self._partition_ids = await self._partitions_of(admin)
        finally:
            await admin.close()

    def _missing(self, existing: set[str]) -> str:
        named = _named(existing, near=self.topic)
        found = f"its topics are {named}" if named else "it has no topics yet"
        return (
            f"Kafka at {self.bootstrap_servers} has no topic {self.topic}, and this command does not create one: "
            f"{found}. Name the installation's topic with MODELREG_TOPIC or --topic; a new installation's is created "
            "by the first `modelreg api` or `modelreg server` started on it" + self._projected()
        )

    def _beside_another_log(self, existing: set[str]) -> str:
        return (
            f"Kafka at {self.bootstrap_servers} has no topic {self.topic}, and this process does not create it: its "
            f"database was built from topic {', '.join(sorted(self.projected_topics))}, and a new topic's events would "
            f"be written beside that log's. Check --topic / MODELREG_TOPIC (the cluster's topics: "
            f"{_named(existing, near=self.topic) or 'none'}); a new installation needs a database of its own"
        )

    def _deleted(self) -> str:
        # Made again empty, its first events would be skipped by every projection, which applied the old ones.
        return (
            f"Kafka at {self.bootstrap_servers} has no topic {self.topic}, though this process's database holds read "
            "models built from it: it was deleted, or KAFKA_BOOTSTRAP_SERVERS names another cluster. It is not made "
            "again empty: restore its events (`modelreg import` of the latest export), then rebuild every read model "
            "(`modelreg rebuild`), docs/operations.md"
        )

    def _projected(self) -> str:
        if not self.projected_topics:
            return ""
        return f" (this process's database was built from topic {', '.join(sorted(self.projected_topics))})"

    async def _partitions_of(self, admin: AIOKafkaAdminClient) -> list[int]:
        # A topic created a moment ago may not have its partitions in the metadata yet.
        for _ in range(50):
            (described,) = await admin.describe_topics([self.topic])
            if described["partitions"]:
                return sorted(p["partition"] for p in described["partitions"])
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} has no partitions in the broker's metadata after 5s")

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        # Every record built and checked before any is sent: one that cannot be, none is.
        records = [(event.stream.encode(), encode(event), _headers(event)) for event in events]
        for event, (key, value, headers) in zip(events, records, strict=True):
            _refuse_too_large(event, key, value, headers)
        self._refused_while_away()
        producer = self._require_producer()
        if self.written is not None:
            for event, (_, value, _) in zip(events, records, strict=True):
                self.written.remember(value, event)
        send = self._send_each if len(events) < BATCHED_FROM else self._send_batched
        # A task of its own, never cancelled: every record of the append is handed to the producer, in order, whether
        # its caller waits for them or not (one cut short between two sends left a command in part to be written).
        handing = asyncio.ensure_future(send(producer, records))
        handing.add_done_callback(self._heard)
        with _unavailable_while_not_answering("appending events", where=self.bootstrap_servers):
            try:
                async with asyncio.timeout(self.answered_within_s):
                    return await asyncio.shield(handing)
            except TimeoutError:
                exc = KafkaTimeoutError(f"no acknowledgement within {self.answered_within_s:g} s")
                self.broker.not_answered(exc)
                raise _not_answering(
                    "appending events", exc, where=self.bootstrap_servers, recording=True, still_held=handing
                ) from None

    def _refused_while_away(self) -> None:
        """Refuses an append while the broker is known to be away, before any record is handed to the producer: it
        would hold them for as long as the outage lasts and write them when the broker is back, minutes after its
        caller had been told UNAVAILABLE (a mutation sent while the broker was down, then the change)."""
        if self.broker.away_since is None:
            return
        away_s = time.time() - self.broker.away_since
        raise EventLogNotAnswering(
            f"the event log (Kafka) has not been answering for {away_s:.0f} s, so nothing was recorded: send it again "
            "shortly",
            f"the event log (Kafka at {self.bootstrap_servers}) has not answered for {away_s:.0f} s: an append was "
            "refused before anything of it was sent",
        )

    def _heard(self, handing: asyncio.Future[list[LogPosition]]) -> None:
        """The outcome of an append's records, waited for or not: the broker answers again, or did not."""
        if handing.cancelled():
            return
        if (exc := handing.exception()) is None:
            self.broker.answered()
        elif isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, KafkaTimeoutError)):
            self.broker.not_answered(exc)

    async def _send_batched(self, producer: AIOKafkaProducer, records: list[_Record]) -> list[LogPosition]:
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
        stored = dict(zip(sent, await _acknowledged(sent.values()), strict=True))
        return [
            LogPosition(self.topic, partition, stored[(partition, n)].offset + place) for partition, n, place in placed
        ]

    async def _send_each(self, producer: AIOKafkaProducer, records: list[_Record]) -> list[LogPosition]:
        futures = [
            await producer.send(self.topic, value=value, key=key, headers=headers) for key, value, headers in records
        ]
        return [LogPosition(self.topic, meta.partition, meta.offset) for meta in await _acknowledged(futures)]

    @property
    def partition_ids(self) -> list[int]:
        return list(self._partition_ids)

    async def append_raw(
        self, records: Sequence[LogRecord], partitions: Sequence[int] | None = None
    ) -> list[LogPosition]:
        """Append records as they are (bytes, key, headers), to the partitions given or by key. A bulk copy (import,
        migrate-log): not bounded as an append is, it waits out a broker that does not answer."""
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
        return [LogPosition(self.topic, meta.partition, meta.offset) for meta in await _acknowledged(futures)]

    async def end_positions(self) -> dict[int, int]:
        with _unavailable_while_not_answering(
            "reading where the log ends", where=self.bootstrap_servers, recording=False
        ):
            try:
                ends = await self._end_positions()
            except (KafkaError, OSError) as exc:
                if not isinstance(exc, KafkaError) or exc.retriable or isinstance(exc, KafkaTimeoutError):
                    self.broker.not_answered(exc)
                raise
        self.broker.answered()
        return ends

    async def _end_positions(self) -> dict[int, int]:
        consumer = self._require_metadata_consumer()
        try:
            async with asyncio.timeout(self.answered_within_s):
                ends = await consumer.end_offsets([TopicPartition(self.topic, p) for p in self._partition_ids])
        except TimeoutError:
            raise KafkaTimeoutError(f"no answer within {self.answered_within_s:g} s") from None
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
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # aiokafka's fetcher, closing, awaits the fetch requests it cancelled: one backing off from a broker that
            # is away comes out of stop() as this (a projector stopped during an outage exited 1 with its traceback),
            # before stop() closed its connections. Ours, if this task is being cancelled, goes on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await self._consumer._client.close()


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
