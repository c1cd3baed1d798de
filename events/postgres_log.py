"""The event log in Postgres: what `modelreg server` uses when no Kafka is configured.

One append-only table per database, one partition per topic, a global position per event. Appends are
serialised by the topic's head row: an appender takes positions by updating it and holds its row lock
until commit, so positions become visible strictly in order and a reader that asks for
`position >= next` can never step over an event that commits later with a smaller position (the classic
trap of tailing a sequence with concurrent writers). Readers sleep on LISTEN/NOTIFY, not in a poll loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import asyncpg

from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition, LogRecord, StartPositions, TopicMissing
from modelreg.events.written import RecentlyWritten
from modelreg.projections.migrations import Migration, migrate

PARTITION = 0
APPENDED_CHANNEL = "modelreg_log_appended"

LOG_MIGRATIONS = (
    Migration(
        "event_log",
        1,
        """
        CREATE TABLE event_log_heads (
            topic text PRIMARY KEY,
            next_position bigint NOT NULL
        );
        CREATE TABLE event_log (
            topic text NOT NULL,
            position bigint NOT NULL,
            stream text,
            type text,
            version int,
            key bytea,
            value bytea,
            appended_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, position)
        );
        CREATE TABLE event_log_dead_letters (
            topic text NOT NULL,
            position bigint NOT NULL,
            reader text NOT NULL,
            reason text NOT NULL,
            key bytea,
            value bytea,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, position, reader)
        );
        """,
    ),
)

# Taking n positions, writing the n events and waking the readers is one statement, so one round trip;
# the head row stays locked until it commits.
_APPEND = """
WITH head AS (
    INSERT INTO event_log_heads AS h (topic, next_position) VALUES ($1, $2)
    ON CONFLICT (topic) DO UPDATE SET next_position = h.next_position + EXCLUDED.next_position
    RETURNING h.next_position - $2 AS first
), written AS (
    INSERT INTO event_log (topic, position, stream, type, version, key, value)
    SELECT $1, head.first + e.n - 1, e.stream, e.type, e.version, e.key, e.value
    FROM head, unnest($3::text[], $4::text[], $5::int[], $6::bytea[], $7::bytea[])
               WITH ORDINALITY AS e(stream, type, version, key, value, n)
)
SELECT head.first, pg_notify($8, $1) FROM head
"""


class PostgresEventLog:
    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        topic: str = "modelreg.events",
        *,
        pool: asyncpg.Pool | None = None,
        projected_topics: Collection[str] = (),
    ) -> None:
        """`pool`: the process's own (services/bootstrap.py), used and left open; else the log opens one.
        `projected_topics`: those the process's database holds read models of (projections/positions.py). A topic
        with no event beside them is refused (TopicMissing): a mistyped name, not a new installation's log (the
        process's commands started a second log, read models built from both)."""
        self.dsn = dsn
        self.topic = topic
        self.projected_topics = frozenset(projected_topics)
        self._given_pool = pool
        self._pool: asyncpg.Pool | None = None
        self.written: RecentlyWritten | None = None

    async def start(self) -> None:
        if self._given_pool is not None:
            self._pool = self._given_pool
        else:
            # The log leaves no session state on its connections (no SET, no session locks; listeners have
            # their own connection), so releasing one skips asyncpg's reset query: one round trip less for
            # every append and every read of every subscriber.
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=8, connection_class=_NoResetConnection
            )
        await migrate(self._pool, LOG_MIGRATIONS)
        if self.projected_topics and self.topic not in self.projected_topics:
            topics = [r["topic"] for r in await self._pool.fetch("SELECT topic FROM event_log_heads ORDER BY topic")]
            if self.topic not in topics:
                raise TopicMissing(
                    f"the event log in PostgreSQL has no topic {self.topic}, and this process does not start one: its "
                    f"database was built from topic {', '.join(sorted(self.projected_topics))}, and a new topic's "
                    f"events would be written beside that log's. Check --topic / MODELREG_TOPIC (the log's topics: "
                    f"{', '.join(topics) or 'none'}); a new installation needs a database of its own"
                )

    async def close(self) -> None:
        if self._pool is not None and self._pool is not self._given_pool:
            await self._pool.close()
        self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresEventLog.start() was not called")
        return self._pool

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        if not events:
            return []
        values = [encode(e) for e in events]
        if self.written is not None:
            for value, event in zip(values, events, strict=True):
                self.written.remember(value, event)
        first = await self._write(
            [e.stream for e in events],
            [e.type for e in events],
            [e.version for e in events],
            [e.stream.encode() for e in events],
            values,
        )
        return [LogPosition(self.topic, PARTITION, first + i) for i in range(len(events))]

    async def append_raw(self, records: Sequence[LogRecord]) -> list[LogPosition]:
        """Append records as they are (bytes and key), bypassing the codec."""
        if not records:
            return []
        headers = [dict(record.headers) for record in records]
        first = await self._write(
            [_as_text(record.key) if record.key else None for record in records],
            [_as_text(h["type"]) if "type" in h else None for h in headers],
            [int(h["version"]) if "version" in h else None for h in headers],
            [record.key for record in records],
            [record.value for record in records],
        )
        return [LogPosition(self.topic, PARTITION, first + i) for i in range(len(records))]

    async def _write(self, streams: list, types: list, versions: list, keys: list, values: list) -> int:
        row = await self.pool.fetchrow(
            _APPEND, self.topic, len(values), streams, types, versions, keys, values, APPENDED_CHANNEL
        )
        return int(row["first"])

    async def end_positions(self) -> dict[int, int]:
        head = await self.pool.fetchval("SELECT next_position FROM event_log_heads WHERE topic = $1", self.topic)
        return {PARTITION: head or 0}

    async def subscribe(
        self, reader: str, start_positions: StartPositions, partitions: Sequence[int] | None = None
    ) -> PostgresSubscription:
        starts = await start_positions([PARTITION])
        listener = await asyncpg.connect(self.dsn)
        subscription = PostgresSubscription(self.pool, listener, self.topic, starts.get(PARTITION, 0))
        await listener.add_listener(APPENDED_CHANNEL, subscription.on_appended)
        return subscription

    async def dead_letter(self, record: LogRecord, reader: str, reason: str) -> None:
        await self.pool.execute(
            "INSERT INTO event_log_dead_letters (topic, position, reader, reason, key, value) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            record.position.topic,
            record.position.offset,
            reader,
            reason,
            record.key,
            record.value,
        )

    async def dead_lettered(self) -> list[tuple[LogRecord, str]]:
        rows = await self.pool.fetch(
            "SELECT position, key, value, reason FROM event_log_dead_letters WHERE topic = $1 ORDER BY position",
            self.topic,
        )
        return [
            (LogRecord(LogPosition(self.topic, PARTITION, r["position"]), r["key"], r["value"]), r["reason"])
            for r in rows
        ]


class _NoResetConnection(asyncpg.Connection):
    def get_reset_query(self) -> str:
        return ""


class PostgresSubscription:
    def __init__(self, pool: asyncpg.Pool, listener: asyncpg.Connection, topic: str, start: int) -> None:
        self._pool = pool
        self._listener = listener
        self._topic = topic
        self._next = start
        self._appended = asyncio.Event()
        # The last read returned less than it could and no append was announced since: reading again
        # before the next announcement would find nothing, so wait for it first.
        self._caught_up = False

    def on_appended(self, _conn: object, _pid: int, _channel: str, topic: str) -> None:
        if topic == self._topic:
            self._appended.set()

    async def next_batch(self, timeout_s: float, max_records: int) -> list[LogRecord]:
        if not self._caught_up or self._appended.is_set():
            batch = await self._read_announced(max_records)
            if batch:
                return batch
        try:
            await asyncio.wait_for(self._appended.wait(), timeout_s)
        except TimeoutError:
            self._caught_up = False  # read once more next time anyway, should an announcement be lost
            return []
        return await self._read_announced(max_records)

    async def _read_announced(self, max_records: int) -> list[LogRecord]:
        # Cleared before reading: an append that commits after the read began still wakes the next wait.
        self._appended.clear()
        batch = await self._read(max_records)
        self._caught_up = len(batch) < max_records
        return batch

    async def _read(self, max_records: int) -> list[LogRecord]:
        rows = await self._pool.fetch(
            "SELECT position, key, value, type, version FROM event_log "
            "WHERE topic = $1 AND position >= $2 ORDER BY position LIMIT $3",
            self._topic,
            self._next,
            max_records,
        )
        if rows:
            self._next = rows[-1]["position"] + 1
        return [
            LogRecord(
                LogPosition(self._topic, PARTITION, r["position"]),
                r["key"],
                r["value"],
                (("type", r["type"].encode()), ("version", str(r["version"]).encode())) if r["type"] else (),
            )
            for r in rows
        ]

    def seek(self, partition: int, offset: int) -> None:
        self._next = offset
        self._caught_up = False

    async def acknowledge(self, next_offsets: dict[int, int]) -> None:
        pass  # the reader's own position table is the only record of progress

    async def close(self) -> None:
        await self._listener.close()


def _as_text(raw: bytes) -> str:
    """The stream and type columns describe a record (its bytes are kept as they are in key and value): a
    foreign producer's key or type header may hold bytes a text column refuses, replaced so that it is kept."""
    return raw.decode(errors="replace").replace("\x00", "\ufffd")
