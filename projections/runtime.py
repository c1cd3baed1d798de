"""Applies the event log to a projection's tables exactly once.

A runner reads the log alone (`run`, `step`) or is fed by the one reader its process shares between its
projections (log_reader.py: `share`, `apply_or_reread`); the rules below are the same either way.

Failure rules, per kind of message:
- a record that cannot be decoded (foreign producer, schema with no upcaster) is dead-lettered with its
  reason, and the projection goes on;
- PostgreSQL failing for a reason of its own installation (disk full, out of memory or connections, a broken
  connection, a shutdown, a read-only standby: database_trouble.py) is no event's fault: nothing is parked and
  nothing is tried event by event; the batch is read again after a pause growing to 10 s, the trouble said once
  (then once a minute, with how many batches waited) and shown by /healthz until a batch applies;
- an event that decodes but fails to apply (a bug), or that was written by a newer modelreg than this
  one, parks its stream: that stream's later events wait in `parked_events`, in order, other streams go
  on, and parked streams are retried. The database, not a runner's memory, says which streams are parked,
  so every runner of the projection (after a rebalance, during a rebuild) honours it;
- the batch's writes and the new positions commit in ONE transaction, so a crash anywhere either keeps
  both or neither, and whatever Kafka redelivers below the stored position is skipped. A batch that does
  not start where the stored position says (a rebuild reset it, another runner moved it, or the consumer
  started from elsewhere) is dropped and every partition in it is re-read from the stored position;
- a database migrated by a newer modelreg than this process (a migration of the projection's or the runtime's
  that this process does not know) stops the projection with `MigratedBeyond` before the batch writes anything:
  the batch's first statement reads the schema's generation as it locks the positions (every applying of
  migrations bumps it, and waits for batches in flight: migrations.py), and when it moved since the runner last
  looked, the batch compares the migrations with those it was built for: no batch writes rows the old way past a
  migration that changed the way;
- an admin's skip (`operations.event_skipped`, on the log) names an event this projection gives up on.
  A rebuild may read it before the event (another partition) or after it (the stream is parked by then),
  and both converge: the skip is recorded in `skipped_events` in the batch's transaction; an event named
  there that fails to apply is dropped instead of parked; a skip for a parked stream releases it, its
  events applied in order without the skipped one. An event that applies is applied, skip or not.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson

from modelreg.events.codec import NewerSchemaVersion, UndecodableEvent, decode
from modelreg.events.database_trouble import TROUBLES_SEEN, DatabaseTrouble, database_trouble
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, LogRecord, Subscription
from modelreg.events.operations import EventSkipped
from modelreg.projections.planner_statistics import PlannerStatistics
from modelreg.projections.positions import PROGRESS_CHANNEL, RUNTIME_MIGRATIONS, stored_positions
from modelreg.projections.projection import CopyInto, Projection, Statement

log = logging.getLogger(__name__)

# A batch PostgreSQL's installation kept out is read again after a pause growing from the first to the most; the
# trouble is said once, then again every TROUBLE_SAID_EVERY_S while it lasts (it was 166 to 581 lines a second).
FIRST_PAUSE_S = 0.5
MOST_PAUSE_S = 10.0
TROUBLE_SAID_EVERY_S = 60.0


class PositionMoved(Exception):
    """The stored positions are not where this batch starts: drop it and read again from them."""

    def __init__(self, positions: dict[int, int]) -> None:
        super().__init__(positions)
        self.positions = positions


class MigratedBeyond(RuntimeError):
    """The database was migrated by a newer modelreg than this process: what it would apply now it would write the
    way it was built for (e.g. reference digests that registry_files 3 keeps out). Not retried by the runner."""

    retriable = False

    def __init__(self, projection: str, known: int, newer: Sequence[str]) -> None:
        super().__init__(
            f"projection {projection}: this database was migrated by a newer modelreg (level {known + len(newer)} > "
            f"{known}: {', '.join(newer)} unknown here); upgrade this process"
        )
        self.projection = projection


@dataclass
class RunnerStats:
    applied: int = 0
    skipped_redelivered: int = 0
    dead_lettered: int = 0
    parked: int = 0
    skipped: int = 0  # dropped because an admin skipped them
    waited_for_database: int = 0  # batches read again after a pause, PostgreSQL's installation failing them
    batches: int = 0
    last_batch_at: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True)
class Applied:
    """What a batch's transaction did for one projection, known to the runner once it committed."""

    projection: str
    topic: str
    next_offsets: dict[int, int]  # per partition of the batch, in partition order
    counts: dict[str, int]


# A projection's stored positions of a batch's partitions, and its parked streams, as its transaction locked them.
Locked = tuple[dict[int, int], set[str]]

# Per partition of a batch a projection passes over: (its next offset, the stored offset it expects).
Plan = dict[int, tuple[int, int]]

# None: an event of a type the projection does not handle, left undecoded (the position still advances).
Decoded = list[tuple[LogRecord, "Envelope | UndecodableEvent | None"]]


class MigrationsChecked:
    """The schema generation (migrations.py) at which a projection's runner last found no migration of its
    projection's or the runtime's that it was not built with. None: not yet looked."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.generation: int | None = None


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
        self.statistics = PlannerStatistics(pool, projection.tables)
        self.migrations = MigrationsChecked(projection)
        self._expected: dict[int, int] = {}  # where this runner believes each partition's stored position is
        self._sought: dict[int, int] = {}  # the offset each partition was last re-read from
        self._subscription: Subscription | None = None
        self._trouble: DatabaseTrouble | None = None  # what PostgreSQL's installation kept the last batches out for
        self._trouble_said_at = 0.0
        self._waited = 0  # batches read again since, for that trouble
        self._pause = FIRST_PAUSE_S
        handled = projection.handled_types()
        self._handled: set[bytes] | None = None if "*" in handled else {t.encode() for t in handled}
        if self._handled is not None:
            self._handled.add(EventSkipped.type.encode())  # every projection honours the skips meant for it

    @property
    def name(self) -> str:
        return self.projection.name

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the log until `stopping` is set."""
        await self.open()
        last_retry = time.monotonic()
        try:
            while not stopping.is_set():
                await self.step()
                if time.monotonic() - last_retry >= self.retry_parked_every_s:
                    last_retry = time.monotonic()
                    await self.retry_parked()
        finally:
            await self.close()

    async def open(self) -> None:
        self._subscription = await self.log.subscribe(f"projection.{self.name}", self.start_positions, self.partitions)

    def share(self, subscription: Subscription) -> None:
        """Be fed by a reader shared with other projections (log_reader.py) instead of reading alone;
        `subscription` takes this runner's seeks."""
        self._subscription = subscription

    @property
    def expected_positions(self) -> dict[int, int]:
        """Where this runner believes each partition's stored position is (what it applied so far)."""
        return self._expected

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def step(self, max_records: int | None = None) -> int:
        """Read one batch (waiting up to the poll timeout) and apply it; returns how many records it had."""
        assert self._subscription is not None, "open() first"
        records = await self._subscription.next_batch(self.poll_timeout_s, max_records or self.max_batch)
        if records:
            await self.apply_or_reread([(record, self._decode(record)) for record in records])
        return len(records)

    async def apply_or_reread(self, decoded: Decoded) -> None:
        """Apply a batch; when it cannot be (Postgres went away mid-batch: nothing committed), seek its
        partitions back to the stored positions to read it again."""
        try:
            await self.apply_decoded(decoded)
        except MigratedBeyond:
            raise
        except Exception as exc:
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if (trouble := database_trouble(exc)) is not None:
                await self._wait_out(trouble)
            else:
                log.error("projection %s: batch not applied (%s); re-reading it", self.name, exc)
            await self._reread({record.position.partition for record, _ in decoded})

    async def _wait_out(self, trouble: DatabaseTrouble) -> None:
        """Pause before reading a batch again that PostgreSQL's trouble kept out; say so once, then once a minute."""
        TROUBLES_SEEN.met(trouble)
        self._waited += 1
        self.stats.waited_for_database += 1
        now = time.monotonic()
        if self._trouble != trouble or now - self._trouble_said_at >= TROUBLE_SAID_EVERY_S:
            if self._trouble == trouble:
                log.error("projection %s still waits: %s (%d batches waited so far)", self.name, trouble, self._waited)
            else:
                log.error("projection %s waits: %s; it applies again once PostgreSQL can", self.name, trouble)
            self._trouble, self._trouble_said_at = trouble, now
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, MOST_PAUSE_S)

    def _mended(self) -> None:
        """A batch committed: PostgreSQL writes again, whatever failed before (this runner's batches, a command)."""
        TROUBLES_SEEN.mended()
        if self._trouble is not None:
            log.warning("projection %s applies again (%d batches waited for PostgreSQL)", self.name, self._waited)
            self._trouble, self._waited, self._pause = None, 0, FIRST_PAUSE_S

    async def start_positions(self, partitions: list[int]) -> dict[int, int]:
        """Read the stored positions of these partitions and continue from them (the log calls this on
        every assignment; call it yourself before feeding `apply_batch` by hand)."""
        async with self.pool.acquire() as conn:
            stored = await stored_positions(conn, self.name, self.log.topic)
        starts = {p: stored.get(p, 0) for p in partitions}
        self._expected.update(starts)
        self._sought.update(starts)
        return starts

    async def _reread(self, partitions: set[int]) -> None:
        """Seek the partitions back to their stored positions, waiting for Postgres if need be."""
        delay = 0.5
        while True:
            try:
                async with self.pool.acquire(timeout=10) as conn:
                    stored = await stored_positions(conn, self.name, self.log.topic)
                self._seek({p: stored.get(p, 0) for p in partitions})
                return
            except Exception as exc:
                log.error("projection %s: cannot read positions (%s), retrying in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    def _seek(self, positions: dict[int, int]) -> None:
        for partition, offset in positions.items():
            self._expected[partition] = offset
            self._sought[partition] = offset
            if self._subscription is not None:
                self._subscription.seek(partition, offset)

    async def apply_batch(self, records: Sequence[LogRecord]) -> None:
        await self.apply_decoded([(record, self._decode(record)) for record in records])

    async def apply_decoded(self, decoded: Decoded) -> None:
        """Apply records already decoded (None: a type this projection does not handle)."""
        if all(event is None for _, event in decoded) and await self._pass_over(decoded):
            return
        try:
            async with self.pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        applied = await self.apply_within(conn, decoded)
                except (PositionMoved, MigratedBeyond):
                    raise
                except Exception as exc:  # a bug in a handler or its SQL: find the event, park its stream
                    if database_trouble(exc) is not None:
                        raise  # no event's fault: each would fail alike (apply_or_reread waits)
                    log.warning("projection %s: batch failed (%s), applying event by event", self.name, exc)
                    async with conn.transaction():
                        applied = await self._apply(conn, decoded, isolate=True)
        except PositionMoved as moved:
            log.info("projection %s: re-reading from the stored positions %s", self.name, moved.positions)
            self._seek(moved.positions)
            return
        await self.committed(applied)

    async def apply_in(self, conn: asyncpg.Connection, decoded: Decoded, *, from_zero: bool = False) -> Applied:
        """Apply a batch inside the caller's transaction by the same rules as `apply_decoded` in its own: an event
        that fails parks its stream. `from_zero`: the caller reset the projection in that transaction, and the
        batch is every record of the log the projection handles, each partition's last record included."""
        if from_zero:
            self._seek(dict.fromkeys(self.partitions_of(decoded), 0))
        try:
            async with conn.transaction():  # a savepoint: a failure undoes the batch, not the caller's work
                return await self.apply_within(conn, decoded)
        except (PositionMoved, MigratedBeyond):
            raise
        except Exception as exc:  # a bug in a handler or its SQL: find the event, park its stream
            if database_trouble(exc) is not None:
                raise  # no event's fault: the caller's transaction fails with it
            log.warning("projection %s: batch failed (%s), applying event by event", self.name, exc)
            return await self._apply(conn, decoded, isolate=True)

    async def apply_within(
        self, conn: asyncpg.Connection, decoded: Decoded, *, locked: Locked | None = None, advance: bool = True
    ) -> Applied:
        """Apply a batch inside the caller's transaction, which may hold other projections' batches too
        (log_reader.py: it locks their positions and advances them, `locked` and `advance=False`); once it
        committed, hand the result to `committed`. Raises what the batch raised: the caller then rolls back
        and applies it alone, through `apply_decoded`."""
        return await self._apply(conn, decoded, isolate=False, locked=locked, advance=advance)

    async def committed(self, applied: Applied) -> None:
        """What a runner does once a batch's transaction committed."""
        self._mended()
        self._expected.update(applied.next_offsets)
        counts = applied.counts
        self.stats.applied += counts["applied"]
        self.stats.skipped_redelivered += counts["skipped"]
        self.stats.parked += counts["parked"]
        self.stats.skipped += counts["skipped_by_admin"]
        self.stats.dead_lettered += counts["dead_lettered"]
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        await self.statistics.refresh_grown(counts["applied"])
        if self._subscription is not None:
            await self._subscription.acknowledge(dict(self._expected))

    def partitions_of(self, decoded: Decoded) -> list[int]:
        return sorted({record.position.partition for record, _ in decoded})

    async def _apply(
        self,
        conn: asyncpg.Connection,
        decoded: Decoded,
        *,
        isolate: bool,
        locked: Locked | None = None,
        advance: bool = True,
    ) -> Applied:
        """Apply one batch inside the caller's transaction; returns the partitions' next offsets and counts."""
        topic = self.log.topic
        first: dict[int, int] = {}
        for record, _ in decoded:
            first.setdefault(record.position.partition, record.position.offset)
        partitions = sorted(first)
        stored, parked = locked if locked is not None else await self._lock_positions(conn, topic, partitions)
        if any(self._moved(p, first[p], stored[p]) for p in partitions):
            raise PositionMoved({p: stored[p] for p in partitions})
        if isolate:
            await self.projection.prepare(conn)

        next_offsets = dict(stored)
        pending: list[Envelope] = []
        dead: list[tuple[LogRecord, str]] = []
        counts = {"applied": 0, "skipped": 0, "parked": 0, "skipped_by_admin": 0}
        for record, event in decoded:
            p, offset = record.position.partition, record.position.offset
            if offset < stored[p]:
                counts["skipped"] += 1  # redelivered: already applied in an earlier transaction
                continue
            next_offsets[p] = offset + 1
            if event is None:
                continue  # a type this projection does not handle
            if isinstance(event, Envelope) and isinstance(event.payload, EventSkipped):
                if event.payload.projection == self.name:
                    # Releasing its stream writes the parked events now: the batch's earlier events go first.
                    await self._write(conn, pending)
                    pending = []
                    await self._skip(conn, event, parked)
            if isinstance(event, NewerSchemaVersion) and await self._skipped(conn, _event_id(record.value)):
                counts["skipped_by_admin"] += 1
            elif isinstance(event, NewerSchemaVersion):
                await self._park(conn, record, event.stream, error=str(event))
                parked.add(event.stream)
                counts["parked"] += 1
            elif isinstance(event, UndecodableEvent):
                dead.append((record, str(event)))
            elif event.stream in parked:
                await self._park(conn, record, event.stream)
                counts["parked"] += 1
            elif not isolate:
                pending.append(event)
                counts["applied"] += 1
            elif await self._apply_isolated(conn, record, event):
                counts["applied"] += 1
            else:
                parked.add(event.stream)
                counts["parked"] += 1
        await self._write(conn, pending)
        for record, reason in dead:
            await self._dead_letter(conn, record, reason)
        counts["dead_lettered"] = len(dead)
        applied = Applied(self.name, topic, {p: next_offsets[p] for p in partitions}, counts)
        if advance:
            await advance_positions(conn, [applied])
        return applied

    async def _write(self, conn: asyncpg.Connection, events: list[Envelope]) -> None:
        """Apply events that are the batch's to write together, in order, inside its transaction."""
        if events:
            await self.projection.prepare(conn, events)
            await _execute(conn, self.projection.batch_statements(events))

    async def _pass_over(self, decoded: Decoded) -> bool:
        """A batch with nothing for this projection only moves its positions: one compare-and-set
        statement instead of a transaction. False when that cannot be done (let the full path decide)."""
        return self in await pass_over(self.pool, [(self, decoded)])

    def pass_over_plan(self, decoded: Decoded) -> Plan | None:
        """Per partition of a batch with nothing for this projection: (next offset, expected stored offset).
        None when the batch is not contiguous with what this runner knows was stored: the full path then
        checks and re-reads."""
        plan: dict[int, tuple[int, int]] = {}
        for record, _ in decoded:
            partition, offset = record.position.partition, record.position.offset
            if partition not in plan and self._expected.get(partition) != offset:
                return None
            expected = plan[partition][1] if partition in plan else offset  # the stored one: the batch's first
            plan[partition] = (offset + 1, expected)
        return plan

    def passed_over(self, next_offsets: dict[int, int]) -> None:
        self._expected.update(next_offsets)
        self.stats.batches += 1

    def _moved(self, partition: int, first_offset: int, stored: int) -> bool:
        if self._expected.get(partition) != stored:
            return True  # a rebuild reset it, another runner advanced it, or we never read it
        # A batch starting past the stored position skipped something, unless we just re-read from there
        # and the log has nothing at that offset (a gap Kafka leaves, e.g. after transaction markers).
        return first_offset > stored and self._sought.get(partition) != stored

    async def _lock_positions(self, conn: asyncpg.Connection, topic: str, partitions: list[int]) -> Locked:
        return (await lock_positions(conn, topic, {self.name: partitions}, [self.migrations]))[self.name]

    async def _apply_isolated(self, conn: asyncpg.Connection, record: LogRecord, event: Envelope) -> bool:
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this event only
                await _execute(conn, [(event.stream, st) for st in self.projection.statements(event)])
            return True
        except Exception as exc:
            if database_trouble(exc) is not None:
                raise  # PostgreSQL's, not the event's: parked, the stream would wait for an admin for nothing
            error = f"{type(exc).__name__}: {exc}"
            if await self._skipped(conn, event.id):
                log.warning("projection %s: dropped %s, skipped by an admin: %s", self.name, event.id, error)
                self.stats.skipped += 1
                return True
            log.error("projection %s: parking stream %s at %s: %s", self.name, event.stream, record.position, error)
            self.stats.last_error = error
            await self._park(conn, record, event.stream, error=error)
            return False

    async def _park(self, conn: asyncpg.Connection, record: LogRecord, stream: str, error: str | None = None) -> None:
        """Keep the event for later; the stream is parked from here on (with the error that parked it)."""
        pos = record.position
        await conn.execute("SELECT pg_notify($1, $2)", PROGRESS_CHANNEL, f"parked:{self.name}")
        await conn.execute(
            "INSERT INTO parked_streams (projection, stream, error) VALUES ($1, $2, $3) "
            "ON CONFLICT (projection, stream) DO NOTHING",
            self.name,
            stream,
            error or "waiting behind an earlier parked event",
        )
        await conn.execute(
            'INSERT INTO parked_events (projection, stream, topic, partition, "offset", value) '
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            self.name,
            stream,
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

    def _decode(self, record: LogRecord) -> Envelope | UndecodableEvent | None:
        return decode_record(record) if self.concerns(type_tag(record)) else None

    def concerns(self, tag: bytes | None) -> bool:
        """Whether a record with this type tag is this projection's business. Our producers tag each record
        with its type; a projection interested in a few types (identity) then skips the rest without paying
        for decoding them. Untagged records (None) are always decoded."""
        return self._handled is None or tag is None or tag in self._handled

    async def _skip(self, conn: asyncpg.Connection, event: Envelope, parked: set[str]) -> None:
        """Record an admin's skip; if its stream is parked here, release it without the skipped event."""
        skip = event.payload
        assert isinstance(skip, EventSkipped)
        await conn.execute(
            "INSERT INTO skipped_events (projection, event_id, stream, reason, skipped_by, skipped_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            self.name,
            skip.event_id,
            skip.stream,
            skip.reason,
            str(event.actor),
            event.occurred_at,
        )
        log.warning("projection %s: %s skips %s (%s)", self.name, event.actor, skip.event_id, skip.reason)
        if skip.stream in parked:
            try:
                async with conn.transaction():  # a savepoint: a failing release leaves the batch whole
                    released = await self._release(conn, skip.stream)
            except Exception as exc:
                if database_trouble(exc) is not None:
                    raise
                await self._count_attempt(conn, skip.stream, f"{type(exc).__name__}: {exc}")
                return
            if released:
                parked.discard(skip.stream)

    async def _skipped(self, conn: asyncpg.Connection, event_id: object) -> bool:
        if event_id is None:
            return False
        return bool(
            await conn.fetchval(
                "SELECT 1 FROM skipped_events WHERE projection = $1 AND event_id = $2", self.name, event_id
            )
        )

    async def retry_parked(self) -> int:
        """Try each parked stream again, its events in order; returns how many streams were released."""
        async with self.pool.acquire() as conn:
            streams = [r["stream"] for r in await conn.fetch(_PARKED_STREAMS, self.name)]
        released = 0
        for stream in streams:
            released += await self.retry_stream(stream)
        return released

    async def retry_stream(self, stream: str) -> bool:
        """Try one parked stream again now (an admin asked); True when it is released."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return bool(await self._release(conn, stream))
            except MigratedBeyond:
                raise
            except Exception as exc:
                if database_trouble(exc) is not None:
                    return False  # not the stream's error: the next retry tries again, the batches say why
                await self._count_attempt(conn, stream, f"{type(exc).__name__}: {exc}")
                return False

    async def _count_attempt(self, conn: asyncpg.Connection, stream: str, error: str) -> None:
        await conn.execute(
            "UPDATE parked_streams SET attempts = attempts + 1, last_attempt_at = now(), error = $3 "
            "WHERE projection = $1 AND stream = $2",
            self.name,
            stream,
            error,
        )

    async def _release(self, conn: asyncpg.Connection, stream: str) -> int:
        """Apply the stream's parked events in order, each in a savepoint; one that fails is dropped if an
        admin skipped it, else the stream stays parked from that event on (with its error). 1: released."""
        where = await conn.fetch(
            "SELECT DISTINCT topic, partition FROM parked_events WHERE projection = $1 AND stream = $2",
            self.name,
            stream,
        )
        # Positions first, as a batch does: no batch of these partitions runs (or parks more) meanwhile.
        for row in where:
            await self._lock_positions(conn, row["topic"], [row["partition"]])
        if not await conn.fetchval(
            "SELECT 1 FROM parked_streams WHERE projection = $1 AND stream = $2 FOR UPDATE", self.name, stream
        ):
            return 0  # released by another runner, or reset by a rebuild
        await self.projection.prepare(conn)
        rows = await conn.fetch(
            'SELECT topic, partition, "offset", value FROM parked_events '
            'WHERE projection = $1 AND stream = $2 ORDER BY topic, partition, "offset"',
            self.name,
            stream,
        )
        done = 0
        for row in rows:
            try:
                async with conn.transaction():
                    event = decode(row["value"])
                    await _execute(conn, [(event.stream, st) for st in self.projection.statements(event)])
            except Exception as exc:
                if database_trouble(exc) is not None:
                    raise  # the stream stays as it was: its release is tried again
                if not await self._skipped(conn, _event_id(row["value"])):
                    error = f"{type(exc).__name__}: {exc}"
                    await _forget_parked(conn, self.name, stream, rows[:done])
                    await self._count_attempt(conn, stream, error)
                    log.debug("projection %s: stream %s still parked (%s)", self.name, stream, error)
                    return 0
                log.warning("projection %s: dropped %s, skipped by an admin", self.name, _event_id(row["value"]))
                self.stats.skipped += 1
            done += 1
        await conn.execute("DELETE FROM parked_events WHERE projection = $1 AND stream = $2", self.name, stream)
        await conn.execute("DELETE FROM parked_streams WHERE projection = $1 AND stream = $2", self.name, stream)
        log.info("projection %s: released stream %s (%d events)", self.name, stream, len(rows))
        return 1


async def _forget_parked(
    conn: asyncpg.Connection, projection: str, stream: str, rows: Sequence[asyncpg.Record]
) -> None:
    """The parked events a partial release applied (or dropped) are no longer waiting."""
    if rows:
        await conn.execute(
            'DELETE FROM parked_events WHERE projection = $1 AND stream = $2 AND (topic, partition, "offset") IN '
            "(SELECT * FROM unnest($3::text[], $4::int[], $5::bigint[]))",
            projection,
            stream,
            [r["topic"] for r in rows],
            [r["partition"] for r in rows],
            [r["offset"] for r in rows],
        )


def _event_id(value: bytes | None) -> UUID | None:
    """The id of a stored event, read without decoding it whole (it may be of a newer schema)."""
    try:
        raw = orjson.loads(value or b"")
        return UUID(raw["id"])
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None


_PARKED_STREAMS = "SELECT stream FROM parked_streams WHERE projection = $1"


# The migrations the database has of these projections' components and the runtime's ($1: their owners; a
# projection owns the components named after it, e.g. registry and registry_files) that this process was not built
# with ($2, $3: those it was). Costs a few hundred microseconds a statement (planning, mostly): a batch runs it
# only when the schema generation moved.
_NEWER = """
SELECT array_agg(m.component || ' ' || m.number ORDER BY m.component, m.number) FROM schema_migrations AS m
WHERE split_part(m.component, '_', 1) = ANY($1::text[])
  AND (m.component, m.number) NOT IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""


@functools.cache
def _built_for(projections: frozenset[type[Projection]]) -> tuple[list[str], list[str], list[int]]:
    """The owners of the projections' components, and the migrations (component, number) they were built with."""
    known = [*RUNTIME_MIGRATIONS, *(m for projection in projections for m in projection.migrations)]
    owners = sorted({"runtime", *(projection.name for projection in projections)})
    return owners, [m.component for m in known], [m.number for m in known]


def built_for(projections: Iterable[Projection]) -> tuple[list[str], list[str], list[int]]:
    return _built_for(frozenset(type(projection) for projection in projections))


async def _check_migrations(conn: asyncpg.Connection, generation: int, checks: Sequence[MigrationsChecked]) -> None:
    """Compare the migrations with those the projections were built for, when the generation moved since their
    runners last did. Raises MigratedBeyond for the first projection the newer migrations belong to (the runtime's:
    to all)."""
    stale = [check for check in checks if check.generation != generation]
    if not stale:
        return
    newer = await conn.fetchval(_NEWER, *built_for(check.projection for check in stale)) or []
    for check in stale:
        projection = check.projection
        owned = [m for m in newer if m.split(" ")[0].split("_")[0] in (projection.name, "runtime")]
        if owned:
            raise MigratedBeyond(projection.name, len([*RUNTIME_MIGRATIONS, *projection.migrations]), owned)
        check.generation = generation


# Each projection's parked streams come with its position rows, read under the lock in the same round trip, and so
# does the schema generation.
_LOCK_POSITIONS = """
SELECT pp.projection, pp.partition, pp.next_offset,
       (SELECT array_agg(ps.stream) FROM parked_streams AS ps WHERE ps.projection = pp.projection) AS parked,
       COALESCE((SELECT generation FROM schema_generation), -1) AS generation  -- -1: its row gone (a restore)
FROM projection_positions AS pp
WHERE pp.topic = $1 AND (pp.projection, pp.partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
ORDER BY pp.projection, pp.partition
FOR UPDATE OF pp
"""


async def lock_positions(
    conn: asyncpg.Connection, topic: str, wanted: dict[str, list[int]], checks: Sequence[MigrationsChecked]
) -> dict[str, Locked]:
    """Lock the position rows of these projections' partitions for a batch (creating missing ones at 0);
    returns, per projection, its stored positions and its parked streams. Raises MigratedBeyond when the database
    was migrated beyond what the projections wanted (`checks`: their runners') were built for."""
    names = [name for name, partitions in wanted.items() for _ in partitions]
    partitions = [p for ps in wanted.values() for p in ps]
    rows = await conn.fetch(_LOCK_POSITIONS, topic, names, partitions)
    if len(rows) < len(names):
        found = {(r["projection"], r["partition"]) for r in rows}
        await conn.executemany(
            "INSERT INTO projection_positions (projection, topic, partition, next_offset) VALUES ($1, $2, $3, 0) "
            "ON CONFLICT DO NOTHING",
            [(name, topic, p) for name, p in zip(names, partitions, strict=True) if (name, p) not in found],
        )
        rows = await conn.fetch(_LOCK_POSITIONS, topic, names, partitions)
    if rows:
        await _check_migrations(conn, rows[0]["generation"], checks)
    locked: dict[str, Locked] = {name: ({}, set()) for name in wanted}
    for row in rows:
        stored, parked = locked[row["projection"]]
        stored[row["partition"]] = row["next_offset"]
        parked.update(row["parked"] or ())
    for name, (_, parked) in locked.items():
        if parked:
            await conn.execute("SELECT pg_notify($1, $2)", PROGRESS_CHANNEL, f"parked:{name}")
    return locked


async def advance_positions(
    conn: asyncpg.Connection, batches: Sequence[Applied], *, passing: Sequence[tuple[str, dict[int, int]]] = ()
) -> None:
    """Store the batches' new positions (their transaction locked them) and announce them at commit; also
    move those of projections `passing` over the batch (locked too, and found where their runners left them),
    unannounced, as `pass_over` does."""
    topic = batches[0].topic
    rows = [(a.projection, p, offset) for a in batches for p, offset in a.next_offsets.items()]
    rows += [(name, p, offset) for name, offsets in passing for p, offset in offsets.items()]
    names, partitions, offsets = (list(column) for column in zip(*rows, strict=True))
    progress = [
        f"{a.projection}|{topic}|" + ",".join(f"{p}:{offset}" for p, offset in a.next_offsets.items()) for a in batches
    ]
    await conn.execute(_ADVANCE, topic, names, partitions, offsets, PROGRESS_CHANNEL, progress)


# Advances only the rows still where their runners left them, and none when the schema generation is not the one
# at which the runners last found no newer migrations ($6; the runners then take the full path, which checks and
# says so); returns the rows it advanced. A partition a
# projection never stored a position for is at 0, so a row expected at 0 is created when missing. Without it,
# on a new topic, a pass-over of two partitions moved the row of one and found none for the other, and the
# runner then saw its position moved and read the batch again: 12% more records in a 100,000-event catch-up.
# Its commit does not wait for the WAL flush either (see _ADVANCE): a pass-over lost in a crash is read and
# passed again.
_PASS_OVER = """
WITH advanced AS (
    UPDATE projection_positions AS pp SET next_offset = n.next_offset, updated_at = now()
    FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS n(projection, partition, next_offset, expected)
    WHERE pp.projection = n.projection AND pp.topic = $1 AND pp.partition = n.partition
      AND pp.next_offset = n.expected AND (SELECT generation FROM schema_generation) = $6
    RETURNING pp.projection, pp.partition
), created AS (
    INSERT INTO projection_positions (projection, topic, partition, next_offset)
    SELECT n.projection, $1, n.partition, n.next_offset
    FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS n(projection, partition, next_offset, expected)
    WHERE n.expected = 0 AND (SELECT generation FROM schema_generation) = $6
    ON CONFLICT DO NOTHING
    RETURNING projection, partition
)
SELECT projection, partition, set_config('synchronous_commit', 'off', true)
FROM (SELECT * FROM advanced UNION ALL SELECT * FROM created) AS moved
"""


async def pass_over(pool: asyncpg.Pool, batches: Sequence[tuple[ProjectionRunner, Decoded]]) -> set[ProjectionRunner]:
    """Move the positions of projections that a batch has nothing for, in one statement for all of them
    (a command's event concerns two or three of a process's six projections). Returns the runners whose
    every partition moved; the others take their batch through the full path, which checks and re-reads."""
    plans = {runner: runner.pass_over_plan(decoded) for runner, decoded in batches}
    rows = [(runner.name, p, ahead, at) for runner, plan in plans.items() if plan for p, (ahead, at) in plan.items()]
    if not rows:
        return set()
    names, partitions, next_offsets, expected = (list(column) for column in zip(*rows, strict=True))
    checked = {runner.migrations.generation for runner in plans}
    generation = checked.pop() if len(checked) == 1 else None
    try:
        moved = await pool.fetch(
            _PASS_OVER, batches[0][0].log.topic, names, partitions, next_offsets, expected, generation
        )
    except Exception as exc:  # a lock wait broken as a deadlock, Postgres gone: the full path decides
        log.info("passing over a batch failed (%s); applying it projection by projection", exc)
        return set()
    advanced = {(r["projection"], r["partition"]) for r in moved}
    passed = set()
    for runner, plan in plans.items():
        if plan and all((runner.name, p) in advanced for p in plan):
            runner.passed_over({p: ahead for p, (ahead, _) in plan.items()})
            passed.add(runner)
    return passed


# The batch's last statement also turns off waiting for the WAL flush at its commit, whatever the pool
# does for others (a process's one pool also takes commands): the log is the source of truth and the
# positions commit with the writes, so a commit lost in a crash is applied again (see create_pool).
_ADVANCE = """
WITH advanced AS (
    UPDATE projection_positions AS pp SET next_offset = n.next_offset, updated_at = now()
    FROM unnest($2::text[], $3::int[], $4::bigint[]) AS n(projection, partition, next_offset)
    WHERE pp.projection = n.projection AND pp.topic = $1 AND pp.partition = n.partition
)
SELECT pg_notify($5, progress), set_config('synchronous_commit', 'off', true) FROM unnest($6::text[]) AS progress
"""


def type_tag(record: LogRecord) -> bytes | None:
    """The type our producers tag a record with (None when untagged: a foreign producer's)."""
    for name, value in record.headers:
        if name == "type":
            return value
    return None


def decode_record(record: LogRecord) -> Envelope | UndecodableEvent:
    if record.value is None:
        return UndecodableEvent("empty message (tombstone): the event log never deletes")
    try:
        return decode(record.value)
    except UndecodableEvent as exc:
        return exc


def execution_plan(statements: Sequence[tuple[str, Statement]]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """Order a batch's (stream, statement) pairs into as few round trips as possible.

    Projections tolerate any order between streams (DESIGN.md, invariant 3), so only each stream's own
    order must be kept, and within a stream statements naming different `rows` commute; a statement
    naming none orders with everything of its stream. A statement joins the round of the previous one it
    must follow when the SQL is the same, else the next round; each round runs one executemany per
    distinct SQL, rows in log order.
    """
    rounds: list[dict[str, list[tuple[object, ...]]]] = []
    last: dict[str, tuple[int, str]] = {}  # per (stream, rows): the round and SQL of its last statement
    latest: dict[str, int] = {}  # per stream: the latest round any of its statements is in
    barrier: dict[str, int] = {}  # per stream: the round of its last whole-stream statement
    for stream, statement in statements:
        if statement.rows:
            key = f"{stream}#{statement.rows}"
            previous = last.get(key)
            if previous is None:
                index = 0
            elif previous[1] == statement.sql:
                index = previous[0]
            else:
                index = previous[0] + 1
            if stream in barrier:
                index = max(index, barrier[stream] + 1)
        else:
            key = stream
            index = latest[stream] + 1 if stream in latest else 0
            if stream in latest and last.get(key) == (latest[stream], statement.sql):
                index = latest[stream]  # the same statement again, nothing else of the stream in between
            barrier[stream] = index
        if index == len(rounds):
            rounds.append({})
        rounds[index].setdefault(statement.sql, []).append(statement.args)
        last[key] = (index, statement.sql)
        latest[stream] = max(latest.get(stream, 0), index)
    return [(sql, rows) for round_ in rounds for sql, rows in round_.items()]


async def _execute(conn: asyncpg.Connection, statements: Sequence[tuple[str, Statement]]) -> None:
    for sql, rows in execution_plan(statements):
        if isinstance(sql, CopyInto):
            await conn.copy_records_to_table(sql.table, records=rows, columns=sql.columns)
        elif len(rows) == 1:
            await conn.execute(sql, *rows[0])
        else:
            await conn.executemany(sql, rows)
