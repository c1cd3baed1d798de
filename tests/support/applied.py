"""Projections applying a test's log up to its end, one after the other, each stopped once it has."""

from __future__ import annotations

import asyncio

import asyncpg

from modelreg.events.log import EventLog
from modelreg.projections.projection import Projection
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.settings import Settings
from support.tables import positions
from support.waiting import wait_until


async def applied(settings: Settings, pool: asyncpg.Pool, log: EventLog, *projections: Projection) -> None:
    ends = await log.end_positions()
    for projection in projections:

        async def caught_up(name: str = projection.name) -> bool:
            done = await positions(settings.database_url, name, log.topic)
            return all(done.get(p, 0) >= end for p, end in ends.items())

        stopping = asyncio.Event()
        task = asyncio.create_task(ProjectionRunner(projection, log, pool).run(stopping))
        try:
            await wait_until(caught_up)
        finally:
            stopping.set()
            await task
