"""Several `modelreg triggers` replicas: one carries out automations, the others stand by and one takes over
when it stops (or dies: its PostgreSQL session ends, and its lock with it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

import asyncpg
import pytest
from support.stack import Stack
from support.tcp_proxy import proxy_to_postgres
from support.waiting import wait_until

from modelreg.services.settings import Settings
from modelreg.services.triggers import (
    ACTIVE_LOCK,
    LOCK_CHECKED_EVERY_S,
    LOCK_LOST_AFTER_S,
    LostTheActiveLock,
    active_replica,
    run_triggers,
)


@pytest.fixture
def log_kind() -> str:
    return "postgres"


async def test_a_second_replica_stands_by_until_the_active_one_stops(settings: Settings) -> None:
    stopping = asyncio.Event()
    first = active_replica(settings, stopping)
    assert await first.__aenter__() is True

    second_active = asyncio.Event()

    async def second() -> None:
        async with active_replica(settings, stopping) as active:
            assert active
            second_active.set()
            await stopping.wait()

    standing_by = asyncio.create_task(second())
    await asyncio.sleep(1.5)
    assert not second_active.is_set()  # the first holds the lock

    await first.__aexit__(None, None, None)
    await asyncio.wait_for(second_active.wait(), 10)
    stopping.set()
    await standing_by


async def test_a_replica_stopped_while_standing_by_never_becomes_active(settings: Settings) -> None:
    holding = asyncio.Event()
    async with active_replica(settings, holding) as active:
        assert active
        stopping = asyncio.Event()
        stopping.set()
        async with active_replica(settings, stopping) as other:
            assert other is False


# The session holding the active lock in this test's database.
LOCK_HOLDER = """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND classid::bigint = $1 AND objid::bigint = $2"""


async def test_an_active_replica_whose_session_ends_stands_down_instead_of_running_beside_the_next(
    settings: Settings,
) -> None:
    # PostgreSQL restarted or failed over, an idle-session killer: the lock went with the session, and a standby
    # takes it within a second. The replica that had it went on carrying out every firing beside the new one.
    stopping = asyncio.Event()
    active = asyncio.create_task(run_triggers(settings, stopping))
    admin = await asyncpg.connect(settings.database_url)
    try:
        holder: list[int] = []

        async def lock_held() -> bool:
            pid = await admin.fetchval(LOCK_HOLDER, ACTIVE_LOCK >> 32, ACTIVE_LOCK & 0xFFFFFFFF)
            holder[:] = [pid] if pid else []
            return bool(holder)

        await wait_until(lock_held, timeout_s=30)
        await admin.execute("SELECT pg_terminate_backend($1)", holder[0])

        with pytest.raises(Exception, match="lock ended"):
            await asyncio.wait_for(asyncio.shield(active), 10)
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(active, 10)
        await admin.close()


async def test_an_active_replica_whose_session_hangs_stands_down_within_about_a_second(settings: Settings) -> None:
    # A network partition, or a primary that failed over and never answers again: no byte comes back, nothing
    # closes. A standby reaching the new primary takes the lock within a second; the replica that had it waited 5 s
    # for an answer, carrying out every firing beside it meanwhile.
    async with proxy_to_postgres(settings.database_url) as network:
        through_it = dataclasses.replace(settings, database_url=network.dsn(settings.database_url))
        stopping, lost = asyncio.Event(), asyncio.Event()
        replica = active_replica(through_it, stopping, lost)
        assert await replica.__aenter__() is True
        await asyncio.sleep(2.5)  # a few checks answered
        assert not lost.is_set()

        network.hang()
        hung_at = time.monotonic()
        await asyncio.wait_for(lost.wait(), 10)
        assert time.monotonic() - hung_at <= LOCK_LOST_AFTER_S + LOCK_CHECKED_EVERY_S + 0.3

        # Standing down does not wait for the hung session to say goodbye (a graceful close waits for ever).
        closing_at = time.monotonic()
        await asyncio.wait_for(replica.__aexit__(None, None, None), 10)
        assert time.monotonic() - closing_at < 2.0


async def test_a_slow_but_answering_session_keeps_the_lock(settings: Settings) -> None:
    # A lock that flapped under a loaded PostgreSQL or network would restart the runner, cutting its deliveries off.
    async with proxy_to_postgres(settings.database_url) as network:
        through_it = dataclasses.replace(settings, database_url=network.dsn(settings.database_url))
        stopping, lost = asyncio.Event(), asyncio.Event()
        async with active_replica(through_it, stopping, lost) as active:
            assert active
            network.delay_s = 0.3  # each way: a SELECT 1 answered in 0.6 s, hundreds of times its usual time
            await asyncio.sleep(4)
            assert not lost.is_set()
            stopping.set()


async def test_a_replica_whose_event_loop_was_busy_keeps_the_lock(settings: Settings) -> None:
    # `modelreg server` runs the API on the same loop: a long request holds it for a while, and the session's answer,
    # come in time, waits unread behind it while the wait for it runs out. That is no lost session.
    async with proxy_to_postgres(settings.database_url) as network:
        through_it = dataclasses.replace(settings, database_url=network.dsn(settings.database_url))
        stopping, lost = asyncio.Event(), asyncio.Event()
        async with active_replica(through_it, stopping, lost) as active:
            assert active
            for _ in range(3):
                network.client_spoke.clear()
                # A check just sent to PostgreSQL, its answer on the way (a replica that stood down sends none).
                await asyncio.wait_for(network.client_spoke.wait(), 5)
                time.sleep(LOCK_LOST_AFTER_S + 0.5)  # the loop held
                await asyncio.sleep(0.2)
                assert not lost.is_set()
            stopping.set()


async def test_a_replica_whose_postgres_hangs_stands_down_and_is_ready_to_start_again(settings: Settings) -> None:
    # Standing down waited on the hung session for every goodbye (the firings' listener, the pool's connections):
    # until TCP gave up, about 15 minutes, the replica neither carried out firings nor stood by, and the firings it
    # had in flight were cut off only once the network came back.
    async with Stack(settings, with_triggers=False), proxy_to_postgres(settings.database_url) as network:
        through_it = dataclasses.replace(settings, database_url=network.dsn(settings.database_url))
        stopping = asyncio.Event()
        replica = asyncio.create_task(run_triggers(through_it, stopping))
        try:
            admin = await asyncpg.connect(settings.database_url)
            try:

                async def lock_held() -> bool:
                    return bool(await admin.fetchval(LOCK_HOLDER, ACTIVE_LOCK >> 32, ACTIVE_LOCK & 0xFFFFFFFF))

                await wait_until(lock_held, timeout_s=30)
            finally:
                await admin.close()
            await asyncio.sleep(1.0)  # the runner at work: a pass or two over pending firings
            network.hang()

            done, _ = await asyncio.wait([replica], timeout=20)
            assert done, "20 s after its session hung, the replica is still standing down"
            with pytest.raises(LostTheActiveLock):
                replica.result()
        finally:
            network.resume()
            stopping.set()
            await asyncio.wait([replica], timeout=30)
