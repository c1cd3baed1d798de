"""PostgreSQL out of disk space is the installation's trouble, not an event's: a projection waits and tries again,
saying so once, instead of parking streams and retrying event by event hundreds of times a second; a command
answers UNAVAILABLE naming the cause, and the log appends nothing half. PostgreSQL raises the real SQLSTATE
(disk_full, 53100) from a trigger: filling a disk is not something a test can do deterministically."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from support.history import registry_history
from support.tables import positions
from support.waiting import wait_until

from modelreg.events.database_trouble import TROUBLES_SEEN
from modelreg.events.log import EventLog
from modelreg.graphql.errors import reported
from modelreg.projections import runtime
from modelreg.projections.audit import AuditProjection
from modelreg.projections.log_reader import SharedLogReader
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.settings import Settings


@asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await task


async def caught_up(dsn: str, log: EventLog) -> bool:
    ends = await log.end_positions()
    done = await positions(dsn, "registry", log.topic)
    return all(done.get(p, 0) >= end for p, end in ends.items())


@pytest.fixture
def log_kind() -> str:
    return "postgres"  # the zero-infra mode's log, which lives in the same PostgreSQL


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "MOST_PAUSE_S", 0.5)


@pytest.fixture
async def disk_full(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """SQL that fills the disk for the inserts into a table, and the disk freed once the test ends."""
    await pool.execute(
        """CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
               RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device'
               USING ERRCODE = 'disk_full';
           END $$"""
    )
    yield "CREATE TRIGGER disk_full BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION disk_full()"
    TROUBLES_SEEN.mended()


async def test_a_projection_waits_for_disk_space_without_parking_and_says_so_once(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, disk_full: str, caplog: pytest.LogCaptureFixture
) -> None:
    history = registry_history(40)
    await event_log.append(history)
    await pool.execute(disk_full.format("runs"))
    runner = ProjectionRunner(RegistryProjection(), event_log, pool, retry_parked_every_s=0.5)
    with caplog.at_level(logging.INFO, logger="modelreg.projections"):
        async with running(runner):
            await wait_until(lambda: _waited(runner, 3))  # tried again, and again: still no space

            assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
            assert await pool.fetchval("SELECT count(*) FROM runs") == 0
            assert await positions(settings.database_url, "registry", event_log.topic) in ({}, {0: 0})
            trouble = TROUBLES_SEEN.current()
            assert trouble is not None and trouble.what == "the registry's database is out of disk space"
            said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert said == [
                "projection registry waits: the registry's database is out of disk space: free space on "
                "PostgreSQL's disk; it applies again once PostgreSQL can"
            ]

            await pool.execute("DROP TRIGGER disk_full ON runs")  # space freed
            await wait_until(lambda: caught_up(settings.database_url, event_log))

    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert await pool.fetchval("SELECT count(*) FROM runs") == len(
        {e.stream for e in history if e.stream[:4] == "run:"}
    )
    assert TROUBLES_SEEN.current() is None
    assert any(r.getMessage().startswith("projection registry applies again (") for r in caplog.records)


async def test_an_append_refused_for_want_of_disk_writes_nothing_and_answers_unavailable(
    pool: asyncpg.Pool, event_log: EventLog, disk_full: str
) -> None:
    history = registry_history(6)
    await event_log.append(history[:3])
    await pool.execute(disk_full.format("event_log"))

    with pytest.raises(asyncpg.DiskFullError) as refused:
        await event_log.append(history[3:])

    answer = reported(refused.value, "logArtifactVersion")
    assert answer.extensions == {"code": "UNAVAILABLE", "retriable": True}
    assert answer.message == "the registry's database is out of disk space: retry later"
    assert await event_log.end_positions() == {0: 3}  # nothing half-written: no position taken
    assert await pool.fetchval("SELECT count(*) FROM event_log") == 3

    await pool.execute("DROP TRIGGER disk_full ON event_log")
    appended = await event_log.append(history[3:])
    assert [p.offset for p in appended] == [3, 4, 5]  # no gap where the refused append was


async def test_in_a_shared_reader_the_projection_whose_table_is_full_waits_and_the_others_go_on(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, disk_full: str
) -> None:
    # As `modelreg server` runs them: one reader for its projections, each in its lane.
    history = registry_history(40)
    await event_log.append(history)
    await pool.execute(disk_full.format("runs"))
    registry = ProjectionRunner(RegistryProjection(), event_log, pool)
    audit = ProjectionRunner(AuditProjection(), event_log, pool)
    reader = SharedLogReader([registry, audit], event_log, retry_parked_every_s=0.5)
    stopping = asyncio.Event()
    following = asyncio.create_task(reader.run(stopping))
    try:
        await wait_until(lambda: _waited(registry, 2))
        await wait_until(lambda: _audited(pool, len(history)))
        assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0

        await pool.execute("DROP TRIGGER disk_full ON runs")
        await wait_until(lambda: caught_up(settings.database_url, event_log))
        assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    finally:
        stopping.set()
        await following


async def _audited(pool: asyncpg.Pool, events: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM audit_log") == events


async def _waited(runner: ProjectionRunner, batches: int) -> bool:
    return runner.stats.waited_for_database >= batches
