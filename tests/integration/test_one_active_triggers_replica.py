"""Several `modelreg triggers` replicas: one carries out automations, the others stand by and one takes over
when it stops (or dies: its PostgreSQL session ends, and its lock with it)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest
from support.waiting import wait_until

from modelreg.services.settings import Settings
from modelreg.services.triggers import ACTIVE_LOCK, active_replica, run_triggers


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
