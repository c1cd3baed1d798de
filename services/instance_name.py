"""A process's name in Kafka's consumer groups (`--instance-id`) is held by one live process at a time.

Under static membership, a member joining under a name replaces whoever held it. Two live processes given
the same name by mistake would replace each other at every heartbeat, forever, each re-reading from its
stored positions: nothing is applied twice (positions live with the read models), but little is applied at
all. So the name is also a PostgreSQL advisory lock, held on a connection of its own for the life of the
process: a second process under a taken name stands by and says why, and takes over when the first stops.
A SIGKILLed holder's connection closes with it, so its restart finds the name free at once; a holder whose
host vanished is found out by TCP keepalives within about half a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

RETRY_S = 1.0
CHECK_EVERY_S = 5.0
# PostgreSQL probes an idle connection after 10 s, then every 5 s, and drops it after 3 unanswered probes:
# the lock of a holder whose host vanished is released in about 25 s instead of the kernel's 2 hours.
KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


class InstanceNameLost(RuntimeError):
    """The connection holding the name closed or stopped answering: the process must take the name again."""


@contextlib.asynccontextmanager
async def instance_name_held(
    dsn: str, name: str, stopping: asyncio.Event, *, scope: str = ""
) -> AsyncIterator[asyncio.Future[None]]:
    """Yields once this process holds `name` within `scope` (the topic and group the name is used in), or once
    `stopping` is set first; the future it yields fails with InstanceNameLost if the name's connection is lost
    while the block runs."""
    conn = await asyncpg.connect(dsn, server_settings=KEEPALIVES)
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watching: asyncio.Task[None] | None = None
    try:
        said = False
        while not stopping.is_set():
            # hashtextextended spreads names over the 64-bit lock space; the triggers' and the migrations'
            # locks are fixed keys that a name would have to hash to exactly.
            if await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended('modelreg kafka instance ' || $1, 0))",
                f"{scope} {name}",
            ):
                break
            if not said:
                log.error(
                    "another live process runs under the name %r (--instance-id / MODELREG_INSTANCE_ID): standing "
                    "by until it stops. To run both, give each process its own name.",
                    name,
                )
                said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RETRY_S)
        if said and not stopping.is_set():
            log.info("took over the name %r", name)

        def closed(_conn: object) -> None:
            if not lost.done():
                lost.set_exception(InstanceNameLost(f"the connection holding the name {name!r} closed"))

        conn.add_termination_listener(closed)
        if conn.is_closed():  # closed before the listener was there to hear it
            closed(conn)
        watching = asyncio.create_task(_answering(conn, name, lost))
        yield lost
    finally:
        if watching is not None:
            watching.cancel()
        if lost.done() and not lost.cancelled():
            lost.exception()  # retrieved: a lost name already stopped the block, or no one waits any more
        else:
            lost.cancel()
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            await conn.close()  # releases the name


async def _answering(conn: asyncpg.Connection, name: str, lost: asyncio.Future[None]) -> None:
    """A partition or a failover leaves the socket open and silent: ask, and count no answer as lost."""
    while not lost.done():
        await asyncio.sleep(CHECK_EVERY_S)
        try:
            await conn.fetchval("SELECT 1", timeout=2 * CHECK_EVERY_S)
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
            if not lost.done():
                lost.set_exception(InstanceNameLost(f"the connection holding the name {name!r} stopped answering"))
            log.debug("the name's connection: %s", exc)
            return


async def until_done_or_lost(work: Callable[[], Awaitable[None]], lost: asyncio.Future[None]) -> None:
    """Runs `work()`; if the name is lost first, stops it and raises InstanceNameLost."""
    task = asyncio.ensure_future(work())
    try:
        await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()
        return
    lost.result()
