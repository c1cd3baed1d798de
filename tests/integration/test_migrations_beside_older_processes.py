"""The first process of a new modelreg migrates the read-model database while processes of the build before still
project. Those stop with an error that says to upgrade them, before writing a row the way they were built for
(e.g. reference digests that registry_files 3 keeps out of file_digests); none straddles a migration (real
PostgreSQL; Kafka or its log)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from support.history import registry_history
from support.tables import positions

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import ApiKeyIssued, principal_stream
from modelreg.events.log import EventLog
from modelreg.projections.migrations import Migration, migrate
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import MigratedBeyond, MigrationsChecked, ProjectionRunner, lock_positions
from modelreg.services.bootstrap import process_parts
from modelreg.services.settings import Settings

# What the next modelreg might add: this build does not know it.
NEWER = Migration("registry_files", 5, "ALTER TABLE artifact_versions ADD COLUMN referenced_digests text[]")
UPGRADE = r"migrated by a newer modelreg \(level 21 > 20: registry_files 5 unknown here\); upgrade this process"


async def test_a_projector_of_the_build_before_stops_instead_of_writing_rows_the_old_way(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    async with process_parts(settings) as parts:  # started before the new build migrated
        await migrate(pool, [NEWER])
        await event_log.append(registry_history(300))
        reader = parts.log_reader(["registry"])
        with pytest.raises(MigratedBeyond, match=UPGRADE):
            await asyncio.wait_for(reader.run(asyncio.Event()), 60)

    assert await pool.fetchval("SELECT count(*) FROM artifact_versions") == 0
    assert await pool.fetchval("SELECT count(*) FROM runs") == 0
    assert await positions(settings.database_url, "registry", event_log.topic) == {}


async def test_a_projector_of_the_build_before_passes_over_nothing_the_new_build_may_handle(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await migrate(pool, [NEWER])
    bob = Actor(kind="user", id="bob")
    issued = ApiKeyIssued(key_id="bobkey000001", principal=bob, key_sha256="0" * 64, role="member")
    await event_log.append([Envelope.new(issued, stream=principal_stream(bob), actor=bob)])
    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await runner.open()
    try:
        with pytest.raises(MigratedBeyond, match=UPGRADE):
            while not await runner.step():  # until the event is read
                pass
    finally:
        await runner.close()
    assert await positions(settings.database_url, "registry", event_log.topic) == {}


async def test_a_migration_waits_for_the_batch_in_flight_and_the_next_batch_sees_it(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    registry = [MigrationsChecked(RegistryProjection())]
    async with pool.acquire() as conn:
        batch = conn.transaction()
        await batch.start()
        await lock_positions(conn, settings.topic, {"registry": [0]}, registry)  # checked: this build's level
        migrating = asyncio.create_task(migrate(pool, [NEWER]))
        await asyncio.sleep(1)
        assert not migrating.done()  # its rows are written as they were checked
        await batch.commit()
    assert await asyncio.wait_for(migrating, 10) == [NEWER]
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(MigratedBeyond, match=UPGRADE):
            await lock_positions(conn, settings.topic, {"registry": [0]}, registry)


async def test_a_migration_of_another_component_does_not_stop_a_projector(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await runner.open()
    try:
        await _projected(runner, event_log, registry_history(20))
        checked = runner.migrations.generation
        await migrate(pool, [Migration("launch_probe", 1, "CREATE TABLE launch_probe (id int)")])
        await _projected(runner, event_log, registry_history(20, seed=8))
    finally:
        await runner.close()
    assert checked is not None and runner.migrations.generation == checked + 1  # looked again, found nothing newer
    assert await pool.fetchval("SELECT count(*) FROM artifact_versions") > 0


async def test_a_projector_that_checked_meets_a_newer_migration_at_a_batch_it_would_only_pass_over(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await runner.open()
    try:
        await _projected(runner, event_log, registry_history(20))
        assert runner.migrations.generation is not None  # it has checked: its next batches may pass over
        before = await positions(settings.database_url, "registry", event_log.topic)
        await migrate(pool, [NEWER])
        bob = Actor(kind="user", id="bob")
        issued = ApiKeyIssued(key_id="bobkey000002", principal=bob, key_sha256="0" * 64, role="member")
        await event_log.append([Envelope.new(issued, stream=principal_stream(bob), actor=bob)])  # not the registry's
        with pytest.raises(MigratedBeyond, match=UPGRADE):
            while not await runner.step():
                pass
    finally:
        await runner.close()
    assert await positions(settings.database_url, "registry", event_log.topic) == before


async def _projected(runner: ProjectionRunner, event_log: EventLog, events: list[Envelope]) -> None:
    """Append the events and step the runner until it has read past them."""
    through = sum(runner.expected_positions.values()) + len(events)
    await event_log.append(events)
    while sum(runner.expected_positions.values()) < through:
        await runner.step()
