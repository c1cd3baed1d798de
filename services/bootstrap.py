"""Wires a process once: its connection pool, its event log, projection progress and the projections it runs.

Every entry point (server, api, projector, triggers, rebuild) takes its parts from here, so a process that
does several jobs (`modelreg server`: the API, the projections and the automations) opens one pool and one
event log, and its projections read the log through one reader. Other parts (blob stores, metrics) are
built by their own adapters from `settings` and use `pool` and `event_log` from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from modelreg.events.log import EventLog
from modelreg.events.written import RecentlyWritten
from modelreg.projections.log_reader import SharedLogReader
from modelreg.projections.migrations import migrate
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.infra.event_log import event_log_for
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations, projection, shown_to_commands
from modelreg.services.settings import Settings

if TYPE_CHECKING:  # the command path is imported where it is used: projector and rebuild processes start faster
    from modelreg.projections.progress import ProjectionProgress
    from modelreg.services.commands.application import Application


class ProcessParts:
    """What one process shares between its jobs. Built by `process_parts`, closed with it."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, event_log: EventLog) -> None:
        self.settings = settings
        self.pool = pool
        self.event_log = event_log
        self._progress: ProjectionProgress | None = None

    async def progress(self) -> ProjectionProgress:
        """How far each projection got (read-your-writes waits on it): one listener per process."""
        from modelreg.projections.progress import ProjectionProgress

        if self._progress is None:
            progress = ProjectionProgress(self.pool)
            await progress.start()
            self._progress = progress
        return self._progress

    async def application(self, **options: Any) -> Application:
        """The command path on these parts (options: Application's keyword arguments, e.g. blobs)."""
        from modelreg.projections.registry_queries import RegistryQueries
        from modelreg.services.commands.application import Application

        options.setdefault("read_your_writes_timeout_s", self.settings.read_your_writes_timeout_s)
        return Application(
            self.event_log,
            RegistryQueries(self.pool),
            await self.progress(),
            projections=shown_to_commands(),
            **options,
        )

    def log_reader(self, names: Sequence[str] = (), **options: Any) -> SharedLogReader:
        """The projections named (default: all) fed by one reader of the log (options: its keyword arguments)."""
        runners = [ProjectionRunner(projection(name), self.event_log, self.pool) for name in names or PROJECTIONS]
        if self.event_log.written is None:  # what this process appends, its projections need not decode
            self.event_log.written = RecentlyWritten()
        return SharedLogReader(runners, self.event_log, written=self.event_log.written, **options)

    async def close(self) -> None:
        if self._progress is not None:
            await self._progress.close()
        await self.event_log.close()
        await self.pool.close()


async def open_parts(settings: Settings, *, pool_size: int = 10, durable_commits: bool = True) -> ProcessParts:
    """Open the pool, bring the read-model schema up to date, start the event log. Close what it returns.

    `durable_commits=False` is for processes that only run projections (see create_pool); a process that
    also takes commands keeps durable commits, and its projections turn them off per batch."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=pool_size, durable_commits=durable_commits)
    event_log = event_log_for(settings, pool)
    try:
        await migrate(pool, all_migrations())
        await event_log.start()
    except BaseException:
        await event_log.close()
        await pool.close()
        raise
    return ProcessParts(settings, pool, event_log)


@contextlib.asynccontextmanager
async def process_parts(
    settings: Settings, *, pool_size: int = 10, durable_commits: bool = True
) -> AsyncIterator[ProcessParts]:
    parts = await open_parts(settings, pool_size=pool_size, durable_commits=durable_commits)
    try:
        yield parts
    finally:
        await parts.close()


@contextlib.asynccontextmanager
async def given_or_own(
    parts: ProcessParts | None, settings: Settings, *, pool_size: int = 10, durable_commits: bool = True
) -> AsyncIterator[ProcessParts]:
    """The process's parts when a caller wired them, else parts of this job's own (closed after it)."""
    if parts is not None:
        yield parts
        return
    async with process_parts(settings, pool_size=pool_size, durable_commits=durable_commits) as own:
        yield own
