"""A rebuild's helper process, which replays a share of the partitions into the rebuild's shadow: it says when it is
connected, applies nothing until the rebuild tells it to go, then applies its share to the end; a rebuild gone
before that leaves it nothing to do. Run here in this process, on real pipes, against the real
log and PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing

import asyncpg
import pytest
from support.history import registry_history
from support.tables import positions
from support.waiting import wait_until

from modelreg.events.log import EventLog
from modelreg.projections.registry import RegistryProjection
from modelreg.services import rebuild as rebuilding
from modelreg.services.rebuild import GO, READY, _replay, _shadow_made, shadow_of
from modelreg.services.settings import Settings


async def _connected(line: multiprocessing.connection.Connection) -> bool:
    return await asyncio.to_thread(line.poll, 60) and line.recv() == READY


async def _in_the_shadow(pool: asyncpg.Pool, topic: str) -> dict[int, int]:
    rows = await pool.fetch(
        f"SELECT partition, next_offset FROM {shadow_of(['registry'])}.projection_positions "
        "WHERE projection = 'registry' AND topic = $1",
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def test_a_helper_applies_nothing_until_told_to_go_then_exactly_its_share(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(300))
    ends = await event_log.end_positions()
    share = sorted(ends)[1:]
    async with pool.acquire() as conn:
        await _shadow_made(conn, [RegistryProjection()])
    ours, theirs = multiprocessing.Pipe()
    helper = asyncio.create_task(_replay(settings, ["registry"], share, theirs))
    try:
        assert await _connected(ours)
        await asyncio.sleep(1)  # room to apply something, were it not waiting
        assert await _in_the_shadow(pool, event_log.topic) == {}

        ours.send(GO)
        await asyncio.wait_for(helper, 60)
    finally:
        helper.cancel()
    applied = await _in_the_shadow(pool, event_log.topic)
    assert applied == {p: ends[p] for p in share if ends[p]}  # and nothing of the partition it does not own
    assert await positions(settings.database_url, "registry", event_log.topic) == {}  # the live ones untouched


async def test_a_helper_whose_rebuild_is_gone_before_the_reset_applies_nothing(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(300))
    async with pool.acquire() as conn:
        await _shadow_made(conn, [RegistryProjection()])
    ours, theirs = multiprocessing.Pipe()
    helper = asyncio.create_task(_replay(settings, ["registry"], sorted(await event_log.end_positions()), theirs))
    try:
        assert await _connected(ours)
        ours.close()  # as when the rebuild's process dies, or fails before the replay starts
        await asyncio.wait_for(helper, 30)
    finally:
        helper.cancel()
    assert await _in_the_shadow(pool, event_log.topic) == {}


async def test_a_helper_whose_rebuild_dies_midway_stops_replaying(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await event_log.append(registry_history(3000))
    ends = await event_log.end_positions()
    async with pool.acquire() as conn:
        await _shadow_made(conn, [RegistryProjection()])
    monkeypatch.setattr(rebuilding, "REPLAY_BATCH", 10)  # a replay long enough to be midway
    ours, theirs = multiprocessing.Pipe()
    helper = asyncio.create_task(_replay(settings, ["registry"], sorted(ends), theirs))
    try:
        assert await _connected(ours)
        ours.send(GO)

        async def midway() -> bool:
            return sum((await _in_the_shadow(pool, event_log.topic)).values()) > 0

        await wait_until(midway)
        ours.close()  # the rebuild's process is killed: the next rebuild will make its shadow anew
        await asyncio.wait_for(helper, 10)
    finally:
        helper.cancel()
    assert sum((await _in_the_shadow(pool, event_log.topic)).values()) < sum(ends.values())
