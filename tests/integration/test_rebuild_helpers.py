"""A rebuild's helper process, which replays a share of the partitions: it says when it is connected, applies
nothing until the rebuild has emptied the tables and tells it to go, then applies its share to the end; a
rebuild gone before that leaves it nothing to do. Run here in this process, on real pipes, against the real
log and PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing

import asyncpg
from support.history import registry_history
from support.tables import positions

from modelreg.events.log import EventLog
from modelreg.services.rebuild import GO, READY, _replay
from modelreg.services.settings import Settings


async def _connected(line: multiprocessing.connection.Connection) -> bool:
    return await asyncio.to_thread(line.poll, 60) and line.recv() == READY


async def test_a_helper_applies_nothing_until_told_to_go_then_exactly_its_share(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(300))
    ends = await event_log.end_positions()
    share = sorted(ends)[1:]
    ours, theirs = multiprocessing.Pipe()
    helper = asyncio.create_task(_replay(settings, ["registry"], share, theirs))
    try:
        assert await _connected(ours)
        await asyncio.sleep(1)  # room to apply something, were it not waiting
        assert await positions(settings.database_url, "registry", event_log.topic) == {}

        ours.send(GO)
        await asyncio.wait_for(helper, 60)
    finally:
        helper.cancel()
    applied = await positions(settings.database_url, "registry", event_log.topic)
    assert applied == {p: ends[p] for p in share if ends[p]}  # and nothing of the partition it does not own


async def test_a_helper_whose_rebuild_is_gone_before_the_reset_applies_nothing(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(300))
    ours, theirs = multiprocessing.Pipe()
    helper = asyncio.create_task(_replay(settings, ["registry"], sorted(await event_log.end_positions()), theirs))
    try:
        assert await _connected(ours)
        ours.close()  # as when the rebuild's process dies, or fails before it empties the tables
        await asyncio.wait_for(helper, 30)
    finally:
        helper.cancel()
    assert await positions(settings.database_url, "registry", event_log.topic) == {}
