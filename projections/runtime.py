"""Applies the event log to a projection's tables exactly once.

Failure rules, per kind of message:
- a record that cannot be decoded (foreign producer, schema with no upcaster) is dead-lettered with its
  reason, and the projection goes on;
- an event that decodes but fails to apply (a bug) parks its stream: that stream's later events wait in
  `parked_events`, other streams go on, and parked streams are retried;
- the batch's writes and the new positions commit in ONE transaction, so a crash anywhere either keeps
  both or neither, and whatever Kafka redelivers below the stored position is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from modelreg.events.codec import UndecodableEvent, decode
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, LogRecord, Subscription
from modelreg.projections.positions import PROGRESS_CHANNEL, stored_positions
from modelreg.projections.projection import Projection, Statement

log = logging.getLogger(__name__)


class PositionMoved(Exception):
    """The stored position is not where this runner left it (a rebuild reset it, or another runner took the
    partition over): drop the batch and continue from the stored position."""

    def __init__(self, positions: dict[int, int]) -> None:
        super().__init__(positions)
        self.positions = positions


@dataclass
class RunnerStats:
    applied: int = 0
    skipped_redelivered: int = 0
    dead_lettered: int = 0
    parked: int = 0
    batches: int = 0
    last_batch_at: float = 0.0
    errors: list[str] = field(default_factory=list)


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        log: EventLog,
        pool: asyncpg.Pool,
        *,
        max_batch: int = 5000,
        poll_timeout_s: float = 0.2,
        retry_parked_every_s: float = 5.0,
        partitions: Sequence[int] | None = None,
    ) -> None:
        self.projection = projection
        self.log = log
        self.pool = pool
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.retry_parked_every_s = retry_parked_every_s
        self.partitions = partitions  # None: share the log with this projection's other runners
        self.stats = RunnerStats()
        self._expected: dict[int, int] = {}  # where this runner believes each partition stands
        self._parked: set[str] = set()
        self._subscription: Subscription | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the log until `stopping` is set."""
        self._parked = await self._load_parked()
        self._subscription = await self.log.subscribe(
            f"projection.{self.name}", self._start_positions, self.partitions
        )
        last_retry = time.monotonic()
        try:
            while not stopping.is_set():
                records = await self._subscription.next_batch(self.poll_timeout_s, self.max_batch)
                if records:
                    await self.apply_batch(records)
                if self._parked and time.monotonic() - last_retry >= self.retry_parked_every_s:
                    last_retry = time.monotonic()
                    await self.retry_parked()
        finally:
            await self._subscription.close()
            self._subscription = None

    async def _start_positions(self, partitions: list[int]) -> dict[int, int]:
        async with self.pool.acquire() as conn:
            stored = await stored_positions(conn, self.name, self.log.topic)
        starts = {p: stored.get(p, 0) for p in partitions}
        self._expected.update(starts)
        return starts

    async def _load_parked(self) -> set[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT stream FROM parked_streams WHERE projection = $1", self.name)
        return {r["stream"] for r in rows}

    async def apply_batch(self, records: Sequence[LogRecord]) -> None:
        decoded = [(record, _decode(record)) for record in records]
        try:
            async with self.pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        parked = await self._apply(conn, decoded, isolate=False)
                except PositionMoved:
                    raise
                except Exception as exc:  # a bug in a handler or its SQL: find the event, park its stream
                    log.warning("projection %s: batch failed (%s), applying event by event", self.name, exc)
                    async with conn.transaction():
                        parked = await self._apply(conn, decoded, isolate=True)
        except PositionMoved as moved:
            log.info("projection %s: stored position moved to %s, seeking", self.name, moved.positions)
            for partition, offset in moved.positions.items():
                self._expected[partition] = offset
                if self._subscription is not None:
                    self._subscription.seek(partition, offset)
            return
        self._parked = parked
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        if self._subscription is not None:
            await self._subscription.acknowledge(dict(self._expected))

    async def _apply(
        self, conn: asyncpg.Connection, decoded: list[tuple[LogRecord, Envelope | UndecodableEvent]], *, isolate: bool
    ) -> set[str]:
        """Apply one batch inside the caller's transaction; returns the parked streams after it."""
        topic = self.log.topic
        partitions = sorted({record.position.partition for record, _ in decoded})
        stored = await self._lock_positions(conn, topic, partitions)
        moved = {p: stored[p] for p in partitions if p in self._expected and stored[p] != self._expected[p]}
        if moved:
            raise PositionMoved(moved)

        parked = set(self._parked)
        next_offsets = dict(stored)
        pending: list[tuple[str, Statement]] = []
        dead: list[tuple[LogRecord, str]] = []
        counts = {"applied": 0, "skipped": 0, "parked": 0}
        for record, event in decoded:
            p, offset = record.position.partition, record.position.offset
            if offset < stored[p]:
                counts["skipped"] += 1  # redelivered: already applied in an earlier transaction
                continue
            next_offsets[p] = offset + 1
            if isinstance(event, UndecodableEvent):
                dead.append((record, str(event)))
            elif event.stream in parked:
                await self._park_event(conn, record, event)
                counts["parked"] += 1
            elif not isolate:
                pending.extend((event.stream, statement) for statement in self.projection.statements(event))
                counts["applied"] += 1
            elif await self._apply_isolated(conn, record, event):
                counts["applied"] += 1
            else:
                parked.add(event.stream)
                counts["parked"] += 1
        await _execute(conn, pending)
        for record, reason in dead:
            await self._dead_letter(conn, record, reason)
        progress = ",".join(f"{p}:{next_offsets[p]}" for p in partitions)
        await conn.execute(
            """WITH moved AS (
                   UPDATE projection_positions AS pp SET next_offset = n.next_offset, updated_at = now()
                   FROM unnest($3::int[], $4::bigint[]) AS n(partition, next_offset)
                   WHERE pp.projection = $1 AND pp.topic = $2 AND pp.partition = n.partition
               )
               SELECT pg_notify($5, $6)""",
            self.name,
            topic,
            partitions,
            [next_offsets[p] for p in partitions],
            PROGRESS_CHANNEL,
            f"{self.name}|{topic}|{progress}",
        )
        # Counted only once the transaction is sure to commit: nothing after this point can fail but COMMIT.
        self._expected.update({p: next_offsets[p] for p in partitions})
        self.stats.applied += counts["applied"]
        self.stats.skipped_redelivered += counts["skipped"]
        self.stats.parked += counts["parked"]
        self.stats.dead_lettered += len(dead)
        return parked

    async def _lock_positions(self, conn: asyncpg.Connection, topic: str, partitions: list[int]) -> dict[int, int]:
        """Lock this projection's position rows for the batch's partitions (creating missing ones at 0)."""
        select = (
            "SELECT partition, next_offset FROM projection_positions "
            "WHERE projection = $1 AND topic = $2 AND partition = ANY($3::int[]) ORDER BY partition FOR UPDATE"
        )
        stored = {r["partition"]: r["next_offset"] for r in await conn.fetch(select, self.name, topic, partitions)}
        missing = [p for p in partitions if p not in stored]
        if missing:
            await conn.executemany(
                "INSERT INTO projection_positions (projection, topic, partition, next_offset) VALUES ($1, $2, $3, 0) "
                "ON CONFLICT DO NOTHING",
                [(self.name, topic, p) for p in missing],
            )
            rows = await conn.fetch(select, self.name, topic, missing)
            stored.update({r["partition"]: r["next_offset"] for r in rows})
        return stored

    async def _apply_isolated(self, conn: asyncpg.Connection, record: LogRecord, event: Envelope) -> bool:
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this event only
                await _execute(conn, [(event.stream, st) for st in self.projection.statements(event)])
            return True
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("projection %s: parking stream %s at %s: %s", self.name, event.stream, record.position, error)
            self.stats.errors.append(error)
            await conn.execute(
                "INSERT INTO parked_streams (projection, stream, error) VALUES ($1, $2, $3) "
                "ON CONFLICT (projection, stream) DO UPDATE SET error = EXCLUDED.error",
                self.name,
                event.stream,
                error,
            )
            await self._park_event(conn, record, event)
            return False

    async def _park_event(self, conn: asyncpg.Connection, record: LogRecord, event: Envelope) -> None:
        pos = record.position
        await conn.execute(
            'INSERT INTO parked_events (projection, stream, topic, partition, "offset", value) '
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            self.name,
            event.stream,
            pos.topic,
            pos.partition,
            pos.offset,
            record.value,
        )

    async def _dead_letter(self, conn: asyncpg.Connection, record: LogRecord, reason: str) -> None:
        pos = record.position
        log.warning("projection %s: dead-lettering %s: %s", self.name, pos, reason)
        await conn.execute(
            'INSERT INTO dead_letters (projection, topic, partition, "offset", reason, key, value) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            self.name,
            pos.topic,
            pos.partition,
            pos.offset,
            reason,
            record.key,
            record.value,
        )
        # Before our COMMIT: a crash in between sends it twice (at least once), never zero times.
        await self.log.dead_letter(record, f"projection.{self.name}", reason)

    async def retry_parked(self) -> int:
        """Try each parked stream again, in order; returns how many streams were released."""
        released = 0
        async with self.pool.acquire() as conn:
            for stream in sorted(self._parked):
                try:
                    async with conn.transaction():
                        rows = await conn.fetch(
                            'SELECT value FROM parked_events WHERE projection = $1 AND stream = $2 ORDER BY "offset"',
                            self.name,
                            stream,
                        )
                        for row in rows:
                            event = decode(row["value"])
                            await _execute(conn, [(event.stream, st) for st in self.projection.statements(event)])
                        await conn.execute(
                            "DELETE FROM parked_events WHERE projection = $1 AND stream = $2", self.name, stream
                        )
                        await conn.execute(
                            "DELETE FROM parked_streams WHERE projection = $1 AND stream = $2", self.name, stream
                        )
                    self._parked.discard(stream)
                    released += 1
                except Exception as exc:
                    await conn.execute(
                        "UPDATE parked_streams SET attempts = attempts + 1, last_attempt_at = now(), error = $3 "
                        "WHERE projection = $1 AND stream = $2",
                        self.name,
                        stream,
                        f"{type(exc).__name__}: {exc}",
                    )
        return released


def _decode(record: LogRecord) -> Envelope | UndecodableEvent:
    if record.value is None:
        return UndecodableEvent("empty message (tombstone): the event log never deletes")
    try:
        return decode(record.value)
    except UndecodableEvent as exc:
        return exc


def execution_plan(statements: Sequence[tuple[str, Statement]]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Order a batch's (stream, statement) pairs into as few round trips as possible.

    Projections tolerate any order between streams (DESIGN.md, invariant 3), so only each stream's own
    order must be kept. A statement joins the round of its stream's previous statement when the SQL is the
    same, else the next round; each round runs one executemany per distinct SQL, rows in log order.
    """
    rounds: list[dict[str, list[tuple[object, ...]]]] = []
    last: dict[str, tuple[int, str]] = {}
    for stream, statement in statements:
        key = f"{stream}#{statement.rows}"
        previous = last.get(key)
        if previous is None:
            index = 0
        elif previous[1] == statement.sql:
            index = previous[0]
        else:
            index = previous[0] + 1
        if index == len(rounds):
            rounds.append({})
        rounds[index].setdefault(statement.sql, []).append(statement.args)
        last[key] = (index, statement.sql)
    return [(sql, rows) for round_ in rounds for sql, rows in round_.items()]


async def _execute(conn: asyncpg.Connection, statements: Sequence[tuple[str, Statement]]) -> None:
    for sql, rows in execution_plan(statements):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0])
        else:
            await conn.executemany(sql, rows)
