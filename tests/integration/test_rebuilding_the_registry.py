"""The registry is read on every request and the write side authorizes from it (who may move a protected alias such
as `production`): rebuilt while the API serves and a projector follows the log, it goes from what it was to what the
log rebuilds, never through the log's past, and every event is applied once (real PostgreSQL; Kafka or its log)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from support.history import registry_history
from support.tables import dump, positions
from support.waiting import wait_until

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog
from modelreg.events.registry import AliasProtected, registered_model_stream
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services import rebuild as rebuilding
from modelreg.services.bootstrap import process_parts
from modelreg.services.settings import Settings

ADMIN = Actor(kind="user", id="root")


def _protected(model: str) -> Envelope:
    payload = AliasProtected(registered_model=model, alias="production")
    return Envelope.new(payload, stream=registered_model_stream(model), actor=ADMIN)


async def _caught_up(settings: Settings, event_log: EventLog) -> bool:
    ends = {p: end for p, end in (await event_log.end_positions()).items() if end}
    return await positions(settings.database_url, "registry", event_log.topic) == ends


async def test_a_registry_rebuild_never_shows_production_unprotected_nor_the_registry_emptied_while_it_runs(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The protection comes last on the log: a replay from an emptied registry reaches it last.
    await event_log.append([*registry_history(400), _protected("classifier")])
    await rebuilding.rebuild(settings, "registry")  # built once, as the server's projector would have
    built = await dump(settings.database_url, RegistryProjection.tables)
    registry = RegistryQueries(pool)
    assert await registry.protected_aliases("classifier") == {"production"}
    versions = len(built["artifact_versions"])

    # The replay in batches small enough for requests to come between them, as a large log's batches do.
    monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 25)
    seen: set[str] = set()
    rebuilt = asyncio.Event()

    async def requests_meanwhile() -> None:
        while not rebuilt.is_set():
            if await registry.protected_aliases("classifier") != {"production"}:
                seen.add("production unprotected")
            if await pool.fetchval("SELECT count(*) FROM artifact_versions") != versions:
                seen.add("versions missing")
            await asyncio.sleep(0)

    requests = asyncio.create_task(requests_meanwhile())
    try:
        await rebuilding.rebuild(settings, "registry", processes=2)
    finally:
        rebuilt.set()
        await requests

    assert sorted(seen) == []
    assert await dump(settings.database_url, RegistryProjection.tables) == built
    assert await _caught_up(settings, event_log)


async def test_events_that_arrive_during_a_registry_rebuild_are_applied_once_by_the_projector_that_follows_the_log(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = registry_history(900, seed=11)
    await event_log.append(history[:600])
    stopping = asyncio.Event()
    async with process_parts(settings) as parts:
        projector = asyncio.create_task(parts.log_reader(["registry"]).run(stopping))
        try:
            await wait_until(lambda: _caught_up(settings, event_log))
            monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 25)
            rebuild = asyncio.create_task(rebuilding.rebuild(settings, "registry"))
            for start in range(600, 900, 30):  # commands keep coming while it replays
                await event_log.append(history[start : start + 30])
                await asyncio.sleep(0.05)
            await rebuild
            await wait_until(lambda: _caught_up(settings, event_log))
            followed = await dump(settings.database_url, RegistryProjection.tables)
        finally:
            stopping.set()
            await projector

    await rebuilding.rebuild(settings, "registry")  # alone, from the log: what each event applied once builds
    assert await dump(settings.database_url, RegistryProjection.tables) == followed


async def test_a_second_rebuild_beside_a_running_one_says_so_and_leaves_its_replay_alone(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(100))
    await rebuilding.rebuild(settings, "registry")
    built = await dump(settings.database_url, RegistryProjection.tables)
    async with pool.acquire() as running:  # what the first rebuild holds while it replays
        await running.execute("SELECT pg_advisory_lock($1, hashtext('registry'))", rebuilding.REBUILD_LOCKS)
        try:
            with pytest.raises(
                RuntimeError, match="another `modelreg rebuild` is rebuilding registry in this database"
            ):
                await rebuilding.rebuild(settings, "registry")
        finally:
            await running.execute("SELECT pg_advisory_unlock($1, hashtext('registry'))", rebuilding.REBUILD_LOCKS)
    assert await dump(settings.database_url, RegistryProjection.tables) == built


async def test_rebuilds_of_every_projection_side_by_side_each_swap_their_own_tables_in(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    """One command per projection at once (as `bench/ingest.py` measures them): each replays into a shadow of its
    own; a shared one was dropped under the others, and the second command was refused."""
    from modelreg.services.projections_catalog import PROJECTIONS

    await event_log.append(registry_history(200))
    await rebuilding.rebuild(settings, list(PROJECTIONS))  # all in one command: what each must rebuild to
    built = {name: await dump(settings.database_url, cls.tables) for name, cls in PROJECTIONS.items()}

    await asyncio.gather(*(rebuilding.rebuild(settings, name) for name in PROJECTIONS))

    assert {name: await dump(settings.database_url, cls.tables) for name, cls in PROJECTIONS.items()} == built
    leftovers = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'modelreg\\_%'")
    assert leftovers == []
