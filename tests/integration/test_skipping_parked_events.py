"""An admin's skip is an event on the log: a live projection releases the parked stream, and a rebuild from
scratch makes the same decision whether it reads the skip before the failing event or after it (real
Postgres; the log here is in memory, so that the test chooses the order)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar
from uuid import UUID

import asyncpg
import orjson
from support.delivery import in_order, interleaved, partitioned_by_stream, put
from support.history import registry_history
from support.tables import dump

from modelreg.events.codec import encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import LogPosition, LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.operations import EventSkipped, parked_stream_decisions
from modelreg.events.registry import ModelCardChanged
from modelreg.projections.audit import AuditProjection
from modelreg.projections.positions import reset
from modelreg.projections.projection import Projection, Statement
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import ProjectionRunner

HISTORY = registry_history(400, seed=5)
ADMIN = Actor(kind="user", id="admin")
REASON = "card written by a buggy client"


def _poisoned_event() -> Envelope:
    """A model card change with later events on its stream, so that a parked stream holds more than it."""
    for i, event in enumerate(HISTORY):
        if isinstance(event.payload, ModelCardChanged) and any(e.stream == event.stream for e in HISTORY[i + 1 :]):
            return event
    raise AssertionError("the history should change a model card and go on with that model")


POISONED = _poisoned_event()


class FailsOnOneEvent:
    """A bug in a handler that only this event triggers (as legacy text a projection cannot store would)."""

    poisoned: ClassVar[set[UUID]] = {POISONED.id}

    def statements(self, event: Envelope) -> list[Statement]:
        if event.id in self.poisoned:
            return [Statement("SELECT 1 / 0", ())]
        return super().statements(event)  # type: ignore[misc]

    def batch_statements(self, events: Sequence[Envelope]) -> list[tuple[str, Statement]]:
        # A projection that folds a batch (the audit log) would not call `statements` for the poisoned event.
        if any(event.id in self.poisoned for event in events):
            return Projection.batch_statements(self, events)  # type: ignore[arg-type]
        return super().batch_statements(events)  # type: ignore[misc]


class BuggyRegistry(FailsOnOneEvent, RegistryProjection):
    pass


class BuggyAudit(FailsOnOneEvent, AuditProjection):
    pass


BUGGY: list[type[Projection]] = [BuggyRegistry, BuggyAudit]
TABLES = [*RegistryProjection.tables, *AuditProjection.tables, "skipped_events"]
HISTORY_PARTITIONS = 3
SKIPS_PARTITION = 3  # the skips on a partition of their own: the test decides which is read first


def skips() -> list[Envelope]:
    return [
        Envelope.new(
            EventSkipped(projection=cls.name, stream=POISONED.stream, event_id=POISONED.id, reason=REASON),
            stream=parked_stream_decisions(cls.name, POISONED.stream),
            actor=ADMIN,
        )
        for cls in BUGGY
    ]


SKIPS = skips()


def partitioned(history: list[Envelope], skip_events: list[Envelope]) -> list[list[LogRecord]]:
    partitions = [*partitioned_by_stream(history, HISTORY_PARTITIONS), []]
    for event in skip_events:
        put(partitions, SKIPS_PARTITION, event)
    return partitions


async def build(
    pool: asyncpg.Pool, dsn: str, projections: list[type[Projection]], batches: list[list[LogRecord]]
) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        for cls in projections:
            await reset(conn, cls.name, cls.tables)
        await conn.execute("DELETE FROM projection_positions")
    log = InMemoryEventLog(topic="events")
    for cls in projections:
        runner = ProjectionRunner(cls(), log, pool)
        await runner.start_positions(list(range(HISTORY_PARTITIONS + 1)))
        for batch in batches:
            await runner.apply_batch(batch)
    return await dump(dsn, TABLES)


async def test_a_skip_read_after_the_failing_event_releases_the_stream_without_it(
    pool: asyncpg.Pool, database_url: str
) -> None:
    history = [r for records in partitioned(HISTORY, [])[:HISTORY_PARTITIONS] for r in records]
    log = InMemoryEventLog(topic="events")
    runner = ProjectionRunner(BuggyRegistry(), log, pool)
    await runner.start_positions(list(range(HISTORY_PARTITIONS + 1)))
    await runner.apply_batch(history)
    parked = await pool.fetch("SELECT stream, error FROM parked_streams WHERE projection = 'registry'")
    assert [(r["stream"], "division by zero" in r["error"]) for r in parked] == [(POISONED.stream, True)]
    waiting = await pool.fetchval("SELECT count(*) FROM parked_events WHERE stream = $1", POISONED.stream)
    at = HISTORY.index(POISONED)
    assert waiting == sum(1 for e in HISTORY[at:] if e.stream == POISONED.stream) > 1

    (skip_record,) = [r for r in partitioned([], SKIPS[:1])[SKIPS_PARTITION]]
    await runner.apply_batch([skip_record])

    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert await pool.fetchval("SELECT count(*) FROM parked_events") == 0
    skipped = await pool.fetchrow("SELECT event_id, stream, reason, skipped_by FROM skipped_events")
    assert dict(skipped) == {
        "event_id": POISONED.id,
        "stream": POISONED.stream,
        "reason": REASON,
        "skipped_by": "user:admin",
    }
    assert runner.stats.skipped == 1


async def test_a_rebuild_decides_as_the_live_run_whichever_it_reads_first_the_skip_or_the_failing_event(
    pool: asyncpg.Pool, database_url: str
) -> None:
    partitions = partitioned(HISTORY, SKIPS)
    history_then_skips = in_order(partitions)  # as live: parked first, then released
    skips_then_history = in_order(partitions[::-1])  # the skips first (they are on another partition)

    live = await build(pool, database_url, BUGGY, history_then_skips)
    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert len(live["skipped_events"]) == 2
    assert await build(pool, database_url, BUGGY, skips_then_history) == live
    for seed in range(4):
        assert await build(pool, database_url, BUGGY, interleaved(partitions, random.Random(seed))) == live

    # And the event is gone as if never appended: the rest of its stream applied in order without it;
    # the audit log shows the skips (who, why).
    without = partitioned([e for e in HISTORY if e.id != POISONED.id], SKIPS)
    assert await build(pool, database_url, [RegistryProjection, AuditProjection], in_order(without)) == live
    audited = {row[0] for row in live["audit_log"]}
    assert str(POISONED.id) not in audited and {str(s.id) for s in SKIPS} <= audited


async def test_a_skip_lets_an_event_that_now_applies_be_applied(pool: asyncpg.Pool, database_url: str) -> None:
    """A skip gives up on an event where it fails; once the bug is fixed, a rebuild keeps the event."""
    fixed = await build(pool, database_url, [RegistryProjection], in_order(partitioned(HISTORY, SKIPS)))
    plain = await build(pool, database_url, [RegistryProjection], in_order(partitioned(HISTORY, [])))
    assert {t: fixed[t] for t in RegistryProjection.tables} == {t: plain[t] for t in RegistryProjection.tables}


async def test_a_skip_read_in_the_batch_that_parked_its_stream_keeps_the_streams_order(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # One batch: two events of a stream, then one its projections cannot read yet (a newer schema) that parks
    # it, one more, the admin's skips of the unreadable one, and a last. Releasing the stream writes what it
    # parked at once, so the batch must first write the stream's two earlier events.
    stream = max({e.stream for e in HISTORY}, key=lambda s: sum(e.stream == s for e in HISTORY))
    first, second, unreadable, parked, last = [e for e in HISTORY if e.stream == stream][:5]
    projections: list[type[Projection]] = [RegistryProjection, AuditProjection]
    skips = [
        Envelope.new(
            EventSkipped(projection=cls.name, stream=stream, event_id=unreadable.id, reason=REASON),
            stream=parked_stream_decisions(cls.name, stream),
            actor=ADMIN,
        )
        for cls in projections
    ]
    newer = orjson.dumps(orjson.loads(encode(unreadable)) | {"version": 99})
    log: list[list[LogRecord]] = [[], []]
    put(log, 0, first)
    put(log, 0, second)
    log[0].append(LogRecord(LogPosition("events", 0, 2), stream.encode(), newer))
    put(log, 0, parked)
    for skip in skips:
        put(log, 1, skip)
    put(log, 0, last)
    one_batch = [*log[0][:4], *log[1], log[0][4]]

    tables = await build(pool, database_url, projections, [one_batch])

    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    audited = await pool.fetch("SELECT event_id FROM audit_log WHERE stream = $1 ORDER BY stream_seq", stream)
    assert [row["event_id"] for row in audited] == [e.id for e in (first, second, parked, last)]
    # And the registry as if the unreadable event had never been appended.
    never: list[list[LogRecord]] = [[], []]
    for event in (first, second, parked, last):
        put(never, 0, event)
    for skip in skips:
        put(never, 1, skip)
    without = await build(pool, database_url, projections, in_order(never))
    assert {t: tables[t] for t in RegistryProjection.tables} == {t: without[t] for t in RegistryProjection.tables}
