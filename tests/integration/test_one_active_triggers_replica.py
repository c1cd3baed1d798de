"""Several `modelreg triggers` replicas: one carries out automations, the others stand by and one takes over
when it stops (or dies: its PostgreSQL session ends, and its lock with it)."""

from __future__ import annotations

import asyncio

import pytest

from modelreg.services.settings import Settings
from modelreg.services.triggers import active_replica


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
