"""One reader of the log feeds every projection of a process: each record decoded once, each projection
with its own positions and transaction (real Postgres; the log real, or in memory where a test drives it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from support.databases import create_database
from support.history import registry_history
from support.tables import dump, positions
from support.waiting import wait_until

from modelreg.events.codec import encode
from modelreg.events.envelope import Envelope
from modelreg.events.log import EventLog, LogPosition, LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunStarted
from modelreg.events.written import RecentlyWritten
from modelreg.projections.audit import AuditProjection
from modelreg.projections.log_reader import SharedLogReader
from modelreg.projections.migrations import migrate
from modelreg.projections.positions import reset
from modelreg.projections.projection import Projection, Statement, handles
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations
from modelreg.services.settings import Settings

ALL_TABLES = [table for cls in PROJECTIONS.values() for table in cls.tables]


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=8)
    await migrate(pool, all_migrations())
    yield pool
    await pool.close()


async def caught_up(dsn: str, log: EventLog, names: list[str]) -> bool:
    ends = await log.end_positions()
    for name in names:
        done = await positions(dsn, name, log.topic)
        if any(done.get(p, 0) < end for p, end in ends.items()):
            return False
    return True


async def _built_alone(dsn: str, log: EventLog) -> dict:
    """Every projection's tables as runners that each read the log alone build them, in a new database."""
    fresh = await create_database(dsn)
    pool = await create_pool(fresh, min_size=1, max_size=4)
    try:
        await migrate(pool, all_migrations())
        for cls in PROJECTIONS.values():
            runner, stopping = ProjectionRunner(cls(), log, pool), asyncio.Event()
            task = asyncio.create_task(runner.run(stopping))
            await wait_until(lambda name=cls.name: caught_up(fresh, log, [name]))
            stopping.set()
            await task
    finally:
        await pool.close()
    return await dump(fresh, ALL_TABLES)


async def test_one_reader_for_every_projection_builds_what_each_reading_alone_builds(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(1000))
    reader = SharedLogReader([ProjectionRunner(cls(), event_log, pool) for cls in PROJECTIONS.values()], event_log)
    stopping = asyncio.Event()
    task = asyncio.create_task(reader.run(stopping))
    try:
        await wait_until(lambda: caught_up(settings.database_url, event_log, list(PROJECTIONS)))
    finally:
        stopping.set()
        await task

    shared = await dump(settings.database_url, ALL_TABLES)
    assert len(shared["audit_log"]) == 1000
    assert shared == await _built_alone(settings.database_url, event_log)


async def test_a_projection_reset_under_a_shared_reader_is_read_again_and_the_others_apply_nothing_twice(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=2)
    history = registry_history(400)
    await log.append(history[:300])
    runners = [
        ProjectionRunner(RegistryProjection(), log, own_pool),
        ProjectionRunner(AuditProjection(), log, own_pool),
    ]
    reader = SharedLogReader(runners, log, max_batch=100)
    await reader.open()
    while not await caught_up(database_url, log, ["registry", "audit"]):
        await reader.step()
    built_once = await dump(database_url, RegistryProjection.tables)

    async with own_pool.acquire() as conn, conn.transaction():  # what `modelreg rebuild registry` does first
        await reset(conn, "registry", RegistryProjection.tables)
    await log.append(history[300:])
    for _ in range(20):
        await reader.step()
    await reader.close()

    assert await caught_up(database_url, log, ["registry", "audit"])
    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == 400  # each once: no parked duplicate
    assert await own_pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert await own_pool.fetchval("SELECT count(*) FROM runs") > len(built_once["runs"])
    assert await dump(database_url, AuditProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, AuditProjection), AuditProjection.tables
    )
    assert await dump(database_url, RegistryProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, RegistryProjection), RegistryProjection.tables
    )


async def _rebuilt_alone(dsn: str, log: EventLog, cls: type[Projection]) -> str:
    fresh = await create_database(dsn)
    pool = await create_pool(fresh, min_size=1, max_size=2)
    try:
        await migrate(pool, all_migrations())
        runner = ProjectionRunner(cls(), log, pool)
        await runner.open()
        while not await caught_up(fresh, log, [cls.name]):
            await runner.step()
        await runner.close()
    finally:
        await pool.close()
    return fresh


class SeenRunStarts(Projection):
    """Keeps the envelopes it is handed (and writes nothing)."""

    name = "seen_run_starts"
    tables = ()
    migrations = ()

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Envelope] = []

    @handles(RunStarted)
    def run_started(self, e: RunStarted, envelope: Envelope) -> list[Statement]:
        self.seen.append(envelope)
        return []


async def test_what_this_process_appended_is_handed_over_as_written_and_what_others_did_is_decoded(
    own_pool: asyncpg.Pool,
) -> None:
    log = InMemoryEventLog(partitions=1)
    log.written = RecentlyWritten()
    ours = [e for e in registry_history(300) if e.type == RunStarted.type][:5]
    theirs = [e for e in registry_history(300, seed=3) if e.type == RunStarted.type][:5]
    await log.append(ours)
    await log.append_raw([LogRecord(LogPosition(log.topic, 0, 0), e.stream.encode(), encode(e)) for e in theirs])
    projection = SeenRunStarts()
    reader = SharedLogReader([ProjectionRunner(projection, log, own_pool)], log, written=log.written)
    await reader.open()
    await reader.step()

    assert [e.id for e in projection.seen] == [e.id for e in ours + theirs]
    assert len(ours) == len(theirs) == 5
    assert all(seen is written for seen, written in zip(projection.seen, ours, strict=False))
    decoded = projection.seen[len(ours) :]
    assert all(seen is not other for seen, other in zip(decoded, theirs, strict=True))
    assert [encode(seen) for seen in decoded] == [encode(other) for other in theirs]


class BrokenOnOneRun(Projection):
    """Fails on one started run, as a bug in a projection's SQL would; writes nothing for the others."""

    name = "broken_on_one_run"
    tables = ()
    migrations = ()

    def __init__(self, breaks_on: Envelope) -> None:
        super().__init__()
        self.breaks_on = breaks_on.id

    @handles(RunStarted)
    def run_started(self, e: RunStarted, envelope: Envelope) -> list[Statement]:
        return [Statement("SELECT 1 / 0", ())] if envelope.id == self.breaks_on else []


async def test_a_projection_failing_in_a_shared_batch_parks_its_stream_and_the_others_apply_the_batch_once(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(150)  # one small batch: the projections it concerns apply it in one transaction
    broken = [e for e in history if e.type == RunStarted.type][3]
    await log.append(history)
    names = ["audit", "registry", "identity", BrokenOnOneRun.name]
    runners = [
        ProjectionRunner(AuditProjection(), log, own_pool),
        ProjectionRunner(RegistryProjection(), log, own_pool),
        ProjectionRunner(PROJECTIONS["identity"](), log, own_pool),  # nothing in the batch for it: passes over
        ProjectionRunner(BrokenOnOneRun(broken), log, own_pool),
    ]
    reader = SharedLogReader(runners, log)
    await reader.open()
    assert await reader.step() == len(history)
    await reader.close()

    assert await caught_up(database_url, log, names)
    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)  # the failure undid nothing
    parked = await own_pool.fetch("SELECT projection, stream FROM parked_streams")
    assert [(r["projection"], r["stream"]) for r in parked] == [(BrokenOnOneRun.name, broken.stream)]
    assert await dump(database_url, RegistryProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, RegistryProjection), RegistryProjection.tables
    )


async def test_a_record_nobody_can_decode_is_dead_lettered_once_per_projection_when_another_fails_beside_it(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(60)
    broken = [e for e in history if e.type == RunStarted.type][0]
    await log.append(history[:30])
    await log.append_raw([LogRecord(LogPosition(log.topic, 0, 0), b"run:x", b"{not json")])
    await log.append(history[30:])
    names = ["audit", BrokenOnOneRun.name]
    runners = [
        ProjectionRunner(AuditProjection(), log, own_pool),
        ProjectionRunner(BrokenOnOneRun(broken), log, own_pool),
    ]
    reader = SharedLogReader(runners, log)
    await reader.open()
    await reader.step()
    await reader.close()

    assert await caught_up(database_url, log, names)
    assert sorted(reader for _, reader, _ in log.dead_letters) == [
        "projection.audit",
        f"projection.{BrokenOnOneRun.name}",
    ]
    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)


async def test_a_malformed_record_of_an_old_schema_version_is_dead_lettered_and_every_projection_goes_on(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    # A v1 record its upcaster cannot read (a foreign producer's, an edited export imported): it raised KeyError
    # or TypeError out of the reader, which stopped at it again on every restart, every projection behind it.
    log = InMemoryEventLog(partitions=1)
    history = registry_history(60)
    await log.append(history[:30])
    malformed = [
        {"type": "automations.automation_created", "version": 1, "payload": {}},
        {"type": "artifacts.version_logged", "version": 1, "payload": {"manifest": 5}},
        {"type": "runs.metrics_logged", "version": 1, "payload": {"rows": [1]}},
    ]
    await log.append_raw(
        [LogRecord(LogPosition(log.topic, 0, 0), b"run:x", orjson.dumps({**r, "stream": "run:x"})) for r in malformed]
    )
    await log.append(history[30:])
    reader = SharedLogReader([ProjectionRunner(cls(), log, own_pool) for cls in PROJECTIONS.values()], log)
    await reader.open()
    try:
        for _ in range(10):
            if await caught_up(database_url, log, list(PROJECTIONS)):
                break
            await reader.step()
    finally:
        await reader.close()

    assert await caught_up(database_url, log, list(PROJECTIONS))
    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)
    reasons = await own_pool.fetch('SELECT DISTINCT "offset", reason FROM dead_letters ORDER BY "offset"')
    assert [r["offset"] for r in reasons] == [30, 31, 32]
    assert all("does not match its schema" in r["reason"] for r in reasons)
    assert await own_pool.fetchval("SELECT count(*) FROM parked_streams") == 0


async def test_a_projection_a_command_has_nothing_for_moves_on_in_the_commands_transaction_and_reads_again_if_reset(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, min_size=4, max_size=4)
    await migrate(pool, all_migrations())
    statements: list[str] = []
    connections = [await pool.acquire() for _ in range(4)]
    for conn in connections:
        conn.add_query_logger(lambda record: statements.append(record.query))
        await pool.release(conn)
    log = InMemoryEventLog(partitions=1)
    history = registry_history(80)
    split = next(i for i in range(40, 80) if history[i].type != RunStarted.type)  # passed over after the reset
    await log.append(history[:split])
    projection = SeenRunStarts()
    reader = SharedLogReader(
        [ProjectionRunner(AuditProjection(), log, pool), ProjectionRunner(projection, log, pool)], log
    )
    await reader.open()
    statements.clear()
    try:
        while not await caught_up(database_url, log, ["audit", SeenRunStarts.name]):
            await reader.step(max_records=1)  # a command's event at a time
        started = [e.id for e in history[:split] if e.type == RunStarted.type]
        assert [e.id for e in projection.seen] == started
        # Passing over took no statement of its own: each event was one transaction for both projections.
        assert not [s for s in statements if s.strip().startswith("WITH advanced") and "n.expected" in s]
        assert sum(s.strip() == "BEGIN;" for s in statements) == split

        async with pool.acquire() as conn, conn.transaction():  # `modelreg rebuild seen_run_starts`, first step
            await reset(conn, SeenRunStarts.name, ())
        await log.append(history[split:])
        while not await caught_up(database_url, log, ["audit", SeenRunStarts.name]):
            await reader.step(max_records=1)
    finally:
        await reader.close()
        await pool.close()

    assert [e.id for e in projection.seen] == started + [e.id for e in history if e.type == RunStarted.type]
    assert await _count(database_url, "audit_log") == len(history)  # audit applied nothing twice


async def test_a_projection_passing_over_a_new_topic_reads_each_record_once(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=2)
    history = [e for e in registry_history(300) if not e.type.startswith("identity.")]
    await log.append(history)
    first = len(log.partitions[0])
    # Nothing on the log is for identity: it passes over every batch. The second batch ends partition 0 and
    # starts partition 1, whose position identity never stored.
    reader = SharedLogReader([ProjectionRunner(PROJECTIONS["identity"](), log, own_pool)], log)
    await reader.open()
    read = [await reader.step(max_records=first - 5), await reader.step(max_records=first)]
    while not await caught_up(database_url, log, ["identity"]):
        read.append(await reader.step(max_records=first))
    await reader.close()

    assert 0 < first < len(history)
    assert sum(read) == len(history)


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


class HeldRunner(ProjectionRunner):
    """A projection behind the others: it holds its `hold`-th batch until the test lets it go."""

    def __init__(self, projection: Projection, log: EventLog, pool: asyncpg.Pool, *, hold: int) -> None:
        super().__init__(projection, log, pool)
        self.hold = hold
        self.batches = 0
        self.holding = asyncio.Event()
        self.released = asyncio.Event()

        self.left = asyncio.Event()  # set when the held batch's apply has ended, however it ended

    async def apply_or_reread(self, decoded: list) -> None:
        self.batches += 1
        if self.batches == self.hold:
            self.holding.set()
            try:
                await self.released.wait()
            finally:
                self.left.set()
        await super().apply_or_reread(decoded)


async def _following(reader: SharedLogReader) -> tuple[asyncio.Event, asyncio.Task]:
    stopping = asyncio.Event()
    return stopping, asyncio.create_task(reader.run(stopping))


async def test_a_projection_behind_does_not_hold_the_others_back_while_the_log_is_followed(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(1200)
    await log.append(history)
    registry = HeldRunner(RegistryProjection(), log, own_pool, hold=1)
    reader = SharedLogReader([registry, ProjectionRunner(AuditProjection(), log, own_pool)], log, max_batch=300)
    stopping, following = await _following(reader)
    try:
        await asyncio.wait_for(registry.holding.wait(), 30)
        # The registry's lane holds what was read while it is busy; the audit applies those batches meanwhile.
        await wait_until(lambda: _position_at_least(database_url, log, "audit", 900))
        assert (await positions(database_url, "registry", log.topic)).get(0, 0) == 0
        registry.released.set()
        await wait_until(lambda: caught_up(database_url, log, ["registry", "audit"]))
    finally:
        registry.released.set()
        stopping.set()
        await following

    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)
    assert await dump(database_url, RegistryProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, RegistryProjection), RegistryProjection.tables
    )


async def test_a_projection_reset_while_its_lane_holds_batches_reads_them_again_in_order_and_loses_none(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(2400)
    await log.append(history)
    audit = HeldRunner(AuditProjection(), log, own_pool, hold=2)
    reader = SharedLogReader([audit, ProjectionRunner(RegistryProjection(), log, own_pool)], log, max_batch=300)
    stopping, following = await _following(reader)
    try:
        await asyncio.wait_for(audit.holding.wait(), 30)
        # The reader hands each batch to the audit's lane first (full batches, each applied alone): once the
        # registry is at 1,200, the audit's lane holds the third and fourth, past the second it is holding.
        await wait_until(lambda: _position_at_least(database_url, log, "registry", 1200))
        async with own_pool.acquire() as conn, conn.transaction():  # `modelreg rebuild audit` starting meanwhile
            await reset(conn, "audit", AuditProjection.tables)
        # Its held batch finds the position moved and reads from 0 again; the batches its lane still holds were
        # read before that and must not be applied as if the first ones had been.
        audit.released.set()
        await wait_until(lambda: caught_up(database_url, log, ["registry", "audit"]))
    finally:
        audit.released.set()
        stopping.set()
        await following

    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)
    assert await dump(database_url, AuditProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, AuditProjection), AuditProjection.tables
    )


async def test_a_reader_stopped_while_a_projection_is_behind_waits_for_its_lane_and_applies_nothing_half(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    await log.append(registry_history(1200))
    registry = HeldRunner(RegistryProjection(), log, own_pool, hold=1)
    reader = SharedLogReader([registry, ProjectionRunner(AuditProjection(), log, own_pool)], log, max_batch=300)
    _, following = await _following(reader)
    await asyncio.wait_for(registry.holding.wait(), 30)

    following.cancel()  # the process is shutting down while the registry is in the middle of a batch
    with pytest.raises(asyncio.CancelledError):
        await following

    # The lane's batch ended before the reader let go of the log: nothing of it runs on a closed log or pool.
    assert registry.left.is_set()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("projection lane") and not t.done()]
    assert (await positions(database_url, "registry", log.topic)).get(0, 0) == 0
    assert await own_pool.fetchval("SELECT count(*) FROM registered_models") == 0


class FailsOnceAt(ProjectionRunner):
    """PostgreSQL gone for a moment: the first batch holding `offset` is not applied, and the projection
    reads it again from its stored position."""

    def __init__(self, projection: Projection, log: EventLog, pool: asyncpg.Pool, *, offset: int) -> None:
        super().__init__(projection, log, pool)
        self.offset = offset
        self.failed = asyncio.Event()

    async def apply_decoded(self, decoded: list) -> None:
        if not self.failed.is_set() and any(record.position.offset == self.offset for record, _ in decoded):
            self.failed.set()
            raise ConnectionError("connection lost")
        await super().apply_decoded(decoded)


async def _each_applied_once_as_alone(dsn: str, pool: asyncpg.Pool, log: InMemoryEventLog) -> None:
    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == len(log.events())
    for cls in (AuditProjection, RegistryProjection):
        assert await dump(dsn, cls.tables) == await dump(await _rebuilt_alone(dsn, log, cls), cls.tables)


@pytest.mark.parametrize("behind", ["audit", "registry"])
async def test_records_read_again_for_one_projection_are_applied_once_by_a_lane_that_was_behind(
    database_url: str, own_pool: asyncpg.Pool, behind: str
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(320)
    await log.append(history[:300])
    held_cls, failing_cls = (
        (AuditProjection, RegistryProjection) if behind == "audit" else (RegistryProjection, AuditProjection)
    )
    held = HeldRunner(held_cls(), log, own_pool, hold=1)
    failing = FailsOnceAt(failing_cls(), log, own_pool, offset=300)
    stopping, following = await _following(SharedLogReader([held, failing], log, max_batch=300))
    try:
        await asyncio.wait_for(held.holding.wait(), 30)
        # Records 300-319 reach the lane behind twice: as read, and as read again for the one that failed them.
        await log.append(history[300:])
        await wait_until(lambda: _position_at_least(database_url, log, failing.name, 320))
        assert failing.failed.is_set()
        held.released.set()  # its lane puts the two reads together in one batch
        await wait_until(lambda: caught_up(database_url, log, ["registry", "audit"]))
    finally:
        held.released.set()
        stopping.set()
        await following

    await _each_applied_once_as_alone(database_url, own_pool, log)


async def test_a_projection_reading_a_partition_again_takes_nothing_read_before_its_seek_took_effect(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(360)
    await log.append(history[:300])
    audit = FailsOnceAt(AuditProjection(), log, own_pool, offset=320)
    registry = HeldRunner(RegistryProjection(), log, own_pool, hold=1)  # behind: its lane fills up
    reader = SharedLogReader([audit, registry], log, max_batch=300)
    stopping, following = await _following(reader)
    try:
        await asyncio.wait_for(registry.holding.wait(), 30)
        await wait_until(lambda: _position_at_least(database_url, log, "audit", 300))
        await log.append(history[300:320])
        await wait_until(lambda: _position_at_least(database_url, log, "audit", 320))
        await log.append(history[320:340])  # the audit fails these and asks to read from 320 again...
        await asyncio.wait_for(audit.failed.wait(), 30)
        # ...while the reader, held by the registry's full lane, has these in hand, read from where it was
        await log.append(history[340:])
        await asyncio.sleep(0.5)
        registry.released.set()
        await wait_until(lambda: caught_up(database_url, log, ["registry", "audit"]))
    finally:
        registry.released.set()
        stopping.set()
        await following

    await _each_applied_once_as_alone(database_url, own_pool, log)


async def test_a_partition_assigned_again_after_a_reset_is_read_from_the_start_by_a_lane_holding_older_reads(
    database_url: str, own_pool: asyncpg.Pool
) -> None:
    log = InMemoryEventLog(partitions=1)
    await log.append(registry_history(2400))
    audit = HeldRunner(AuditProjection(), log, own_pool, hold=2)
    reader = SharedLogReader([audit, ProjectionRunner(RegistryProjection(), log, own_pool)], log, max_batch=300)
    stopping, following = await _following(reader)
    try:
        await asyncio.wait_for(audit.holding.wait(), 30)  # batch 2 taken; the lane holds 3 and 4
        await wait_until(lambda: _position_at_least(database_url, log, "registry", 1200))
        await _audit_reset_then_assigned_again_waiting_for(audit, reader, own_pool)  # the lane's batch
        await wait_until(lambda: caught_up(database_url, log, ["registry", "audit"]))
    finally:
        audit.released.set()
        stopping.set()
        await following

    await _each_applied_once_as_alone(database_url, own_pool, log)


async def _audit_reset_then_assigned_again_waiting_for(
    audit: HeldRunner, reader: SharedLogReader, pool: asyncpg.Pool
) -> None:
    """`modelreg rebuild audit` resets it while its held batch is being applied; then a Kafka rebalance keeps the
    partition here (aiokafka calls start_positions from a task of its own). The assignment must wait for the
    held batch, which was taken against the positions before the reset."""
    async with pool.acquire() as conn, conn.transaction():
        await reset(conn, "audit", AuditProjection.tables)

    async def assigned_again() -> None:
        assert reader._subscription is not None
        starts = await reader.start_positions([0])
        reader._subscription.seek(0, starts[0])

    assigning = asyncio.create_task(assigned_again())
    await asyncio.sleep(0.2)
    assert not assigning.done()
    audit.released.set()
    await assigning


async def _position_at_least(dsn: str, log: EventLog, name: str, offset: int) -> bool:
    return (await positions(dsn, name, log.topic)).get(0, 0) >= offset


@pytest.mark.parametrize("path", ["a command's batch while every lane is idle", "a reader without lanes"])
async def test_a_partition_assigned_again_while_the_reader_applies_a_batch_itself_waits_for_it_and_loses_nothing(
    database_url: str, own_pool: asyncpg.Pool, path: str
) -> None:
    log = InMemoryEventLog(partitions=1)
    history = registry_history(900)
    if path == "a reader without lanes":  # as a rebuild reads: batches larger than one transaction takes
        size, runners_after = 300, [ProjectionRunner(RegistryProjection(), log, own_pool)]
        lane_batches = 0
    else:
        size, runners_after, lane_batches = 50, [], 2
    audit = HeldRunner(AuditProjection(), log, own_pool, hold=2)
    reader = SharedLogReader([audit, *runners_after], log, max_batch=size, lane_batches=lane_batches)
    await log.append(history[:size])
    stopping, following = await _following(reader)
    try:
        await wait_until(lambda: _position_at_least(database_url, log, "audit", size))
        await log.append(history[size : 2 * size])
        await asyncio.wait_for(audit.holding.wait(), 30)  # the reader's own apply holds the second batch
        await _audit_reset_then_assigned_again_waiting_for(audit, reader, own_pool)  # the reader's own batch
        await log.append(history[2 * size :])
        await wait_until(lambda: caught_up(database_url, log, [runner.name for runner in reader.runners]))
    finally:
        audit.released.set()
        stopping.set()
        await following

    assert await own_pool.fetchval("SELECT count(*) FROM audit_log") == len(history)
    assert await dump(database_url, AuditProjection.tables) == await dump(
        await _rebuilt_alone(database_url, log, AuditProjection), AuditProjection.tables
    )
