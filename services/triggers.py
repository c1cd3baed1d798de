"""The `modelreg triggers` process: the automation runner (and the requeue of vanished agents' jobs).

The trigger projection itself runs in the projector like every projection; this process acts on what
it recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg

from modelreg.services.automations.runner import WEBHOOK_BACKOFF_S, AutomationRunner
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.bootstrap import ProcessParts, given_or_own
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)

# One replica carries out automations at a time (a webhook is delivered once, not once per replica); the others
# wait on this PostgreSQL advisory lock and one takes over within a second when the active one dies (its
# session ends, and the lock with it). Its key must differ from the migrations' lock (projections/migrations.py):
# an active replica holds this one for its whole life, and would otherwise block every later start's migrations.
ACTIVE_LOCK = 0x6D6F64656C747267  # "modeltrg"
# How often the active replica asks whether the session holding its lock still lives. A session can end under a
# replica that goes on (PostgreSQL restarted or failed over, an idle-session killer, a proxy in between): the lock
# went with it, a standby took it within a second, and two replicas carried out every firing side by side for good.
LOCK_CHECKED_EVERY_S = 0.5
# How long the active replica waits for its session's answer before it stands down. A session that hangs (a network
# partition, a primary failed over that never answers again) rather than ends says nothing: waiting 5 s for it left
# two replicas active for up to 6 s. A SELECT 1 on an open session takes well under a millisecond, a few on a busy
# server or across zones; a second leaves room for a couple of lost packets sent again (Linux's least RTO is 200 ms)
# and a server hundreds of times slower than usual, where firings would stall anyway. So a replica stands down
# within LOCK_CHECKED_EVERY_S + LOCK_LOST_AFTER_S (1.5 s) of its session's last answer; a standby, asking every
# second, takes over within a second of the session's end: at most about a second and a half with both active.
LOCK_LOST_AFTER_S = 1.0
# A graceful close waits for the server to drop the session: one that hangs never does (until TCP gives up, about
# 15 minutes), and the replica neither stood by nor started again meanwhile. Past this, the socket is just dropped.
LOCK_CLOSED_WITHIN_S = 1.0
STANDBY_ASKS_WITHIN_S = 10.0
RUNNER_CUT_SHORT_WITHIN_S = 3.0


class LostTheActiveLock(Exception):
    """The session holding the active replica's lock ended: another replica may be active now."""


@contextlib.asynccontextmanager
async def active_replica(
    settings: Settings, stopping: asyncio.Event, lost: asyncio.Event | None = None
) -> AsyncIterator[bool]:
    """Yields True once this replica holds the lock (False if stopped first); holds it until the block ends.
    `lost` is set if the lock's session ends meanwhile."""
    conn = await asyncpg.connect(settings.database_url)
    watching: asyncio.Task[None] | None = None
    try:
        announced = False
        while not stopping.is_set():
            # A standby's session that hangs would keep it standing by for good (until TCP gives up): past this, it
            # fails, and is started again on a session of its own.
            if await asyncio.wait_for(
                conn.fetchval("SELECT pg_try_advisory_lock($1)", ACTIVE_LOCK), STANDBY_ASKS_WITHIN_S
            ):
                break
            if not announced:
                log.info("triggers: another replica is active; standing by")
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
        if lost is not None and not stopping.is_set():
            watching = asyncio.create_task(_watch_the_lock(conn, stopping, lost))
        yield not stopping.is_set()
    finally:
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await _closed(conn)  # releases the lock


async def _closed(conn: asyncpg.Connection) -> None:
    try:
        # Bounded as a whole: asyncpg's own timeout leaves out its wait for the cancel of a query cut short.
        async with asyncio.timeout(LOCK_CLOSED_WITHIN_S):
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):  # its session may be gone already
        conn.terminate()  # the session, if it lives, ends with the socket, and its lock with it


async def _watch_the_lock(conn: asyncpg.Connection, stopping: asyncio.Event, lost: asyncio.Event) -> None:
    """Sets `lost` once the lock's session no longer answers: a session that answers still holds the lock, and one
    that cannot answer in time may be gone (its lock with it)."""
    while not stopping.is_set():
        try:
            answered = await _answers(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("triggers: the session holding the active lock ended (%s): standing down", exc)
            lost.set()
            return
        if not answered:
            log.error(
                "triggers: the session holding the active lock did not answer within %g s (a network partition, a "
                "failed-over primary?): standing down, as another replica may take the lock",
                LOCK_LOST_AFTER_S,
            )
            lost.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), LOCK_CHECKED_EVERY_S)


async def _answers(conn: asyncpg.Connection) -> bool:
    """Whether the session answers a SELECT 1 within LOCK_LOST_AFTER_S of the loop's time."""
    # One round trip (the simple query protocol): a prepared statement's first use takes two.
    asking = asyncio.ensure_future(conn.execute("SELECT 1"))
    try:
        done, _ = await asyncio.wait([asking], timeout=LOCK_LOST_AFTER_S)
        if not done:
            # The loop may have been held meanwhile (`modelreg server` serves the API on it): then the answer came in
            # time and waits unread, and its timer went off before the loop could read it. A look at what arrived
            # tells that apart from a session that said nothing.
            done, _ = await asyncio.wait([asking], timeout=0.05)
        if not done:
            return False
        asking.result()  # a session that ended raises here
        return True
    finally:
        if not asking.done():  # not awaited: cut short on a hung session, asyncpg's cancel may hang with it
            asking.cancel()
            asking.add_done_callback(lambda cut_short: cut_short.cancelled() or cut_short.exception())


async def run_triggers(
    settings: Settings,
    stopping: asyncio.Event,
    *,
    webhook_backoff_s: float = WEBHOOK_BACKOFF_S,
    parts: ProcessParts | None = None,
) -> None:
    """`parts`: the process's own (services/bootstrap.py) when it does more than carry out automations."""
    async with given_or_own(parts, settings, pool_size=10) as wired:
        application = await wired.application()
        runner = AutomationRunner(
            application,
            WebhookSecrets(settings.webhook_secret_key),
            agent_timeout_s=settings.agent_timeout_s,
            run_crashed_after_s=settings.run_crashed_after_s,
            webhook_backoff_s=webhook_backoff_s,
        )
        lost = asyncio.Event()
        async with active_replica(settings, stopping, lost) as active:
            if not active:
                return  # stopped while standing by
            log.info("triggers: carrying out automations on topic %s", settings.topic)
            # The runner stops when the process does, or when the lock is lost: a firing it had in flight stays
            # pending, for whichever replica is active next (the same job id, the same webhook delivery id).
            runner_stopping = asyncio.Event()
            relay = asyncio.create_task(_first_of(stopping, lost, then=runner_stopping))
            try:
                await _run_unless_lost(runner.run(runner_stopping), lost, runner.cut_short)
            finally:
                relay.cancel()
                await application.close()
        if lost.is_set() and not stopping.is_set():
            # Started again (restart_on_failure, the process's supervisor), it stands by if another took the lock.
            raise LostTheActiveLock("the session holding the active replica's lock ended; another may be active")


async def _first_of(*events: asyncio.Event, then: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        then.set()
    finally:
        for wait in waits:
            wait.cancel()


async def _run_unless_lost(run: Coroutine[Any, Any, None], lost: asyncio.Event, cut_short: Callable[[], None]) -> None:
    """`run` to its end, or cut short once the lock is lost: a pass over firings waiting on a session that hangs
    never gets to see it was asked to stop, and the firings it has in flight went on beside the next active replica."""
    running = asyncio.ensure_future(run)
    losing = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait([running, losing], return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            cut_short()  # its firings first, at once: its own ending may wait on the hung session before it gets there
            running.cancel()
            # Cut short where it waits on the hung session, it may wait there again to let its connection go: past
            # this, it is left to it (it carries out nothing more: each firing in flight was cancelled).
            await asyncio.wait([running], timeout=RUNNER_CUT_SHORT_WITHIN_S)
        if running.done() and not running.cancelled():
            running.result()  # its failure, if it failed
    finally:
        losing.cancel()
        if not running.done():  # this task cancelled (the process stopping)
            running.cancel()
