"""Read-your-writes: wait until projections have applied a given log position (DESIGN.md, invariant 5).

Runners NOTIFY on commit; this listens, so a waiter wakes within a millisecond of the commit instead of
polling. A slow poll stays as a safety net for a dropped LISTEN connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import asyncpg

from modelreg.events.log import LogPosition
from modelreg.projections.positions import PROGRESS_CHANNEL

log = logging.getLogger(__name__)


class ProjectionLagging(TimeoutError):
    def __init__(self, projections: Iterable[str], positions: Iterable[LogPosition], timeout_s: float) -> None:
        self.projections = sorted(projections)
        self.positions = list(positions)
        super().__init__(
            f"projections {', '.join(self.projections)} did not reach {self.positions} within {timeout_s}s"
        )


class ProjectionProgress:
    def __init__(self, pool: asyncpg.Pool, *, safety_poll_s: float = 0.25) -> None:
        self._pool = pool
        self._reached: dict[tuple[str, str, int], int] = {}
        self._changed = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._safety_poll_s = safety_poll_s
        self._maybe_parked = True  # until a check says no stream is parked
        self._parked_checked_at = float("-inf")
        self._also: list[tuple[str, Callable[..., None]]] = []
        self._listen_tried_at = float("-inf")

    @property
    def listening(self) -> bool:
        """Whether notifications arrive (False once the listener's connection is lost)."""
        if self._listener is None:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool took the lost connection back from under its proxy
            return False

    async def also_listen(self, channel: str, on_notify: Callable[[], None]) -> None:
        """Call `on_notify` for each NOTIFY on `channel`, heard on this listener's connection: what a transaction
        announces there is then handled before a waiter for that transaction's positions wakes. It is also called
        whenever the positions are read instead of heard (refresh: at start, on a waiter's safety poll, when a lost
        listener comes back), since announcements may have gone unheard then."""
        if self._listener is None:
            raise RuntimeError("start() the progress listener first")

        def heard(*_: object) -> None:
            on_notify()

        await self._listener.add_listener(channel, heard)
        self._also.append((channel, heard))

    async def listen_again(self) -> None:
        """A new listener for one whose connection was lost (PostgreSQL restarted): tried at most once a second."""
        now = asyncio.get_running_loop().time()
        if self.listening or self._listener is None or now - self._listen_tried_at < 1.0:
            return
        self._listen_tried_at = now
        listener = await self._pool.acquire()
        try:
            await listener.add_listener(PROGRESS_CHANNEL, self._on_notify)
            for channel, heard in self._also:
                await listener.add_listener(channel, heard)
        except BaseException:
            await self._pool.release(listener)
            raise
        self._listener = listener
        log.info("read-your-writes: listening again after the listener's connection was lost")
        await self.refresh()  # which tells the side listeners that what changed meanwhile went unheard

    async def start(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(PROGRESS_CHANNEL, self._on_notify)
        await self.refresh()

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            # A listener whose PostgreSQL went away (restarted) is closed already and has nothing to undo.
            with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                await listener.remove_listener(PROGRESS_CHANNEL, self._on_notify)
                for channel, heard in self._also:
                    await listener.remove_listener(channel, heard)
            with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                await self._pool.release(listener)

    async def refresh(self) -> None:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT projection, topic, partition, next_offset FROM projection_positions")
        self._reached = {(r["projection"], r["topic"], r["partition"]): r["next_offset"] for r in rows}
        # Read, not heard: what was announced meanwhile may not have been heard (a listener dead but open), so
        # whoever listens on the side is told something may have changed before a waiter wakes.
        for _, heard in self._also:
            heard()
        self._wake()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("parked:"):
            self._maybe_parked = True
            return
        if payload.startswith("reset:"):
            projection = payload.removeprefix("reset:")
            for key in self._reached:
                if key[0] == projection:
                    self._reached[key] = 0
            return
        projection, topic, progress = payload.split("|")
        for item in progress.split(","):
            partition, next_offset = item.split(":")
            self._reached[(projection, topic, int(partition))] = int(next_offset)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def reached(self, projections: Iterable[str], positions: Iterable[LogPosition]) -> bool:
        return all(
            self._reached.get((projection, pos.topic, pos.partition), 0) > pos.offset
            for projection in projections
            for pos in positions
        )

    async def wait_for(self, projections: Iterable[str], positions: Iterable[LogPosition], timeout_s: float) -> None:
        projections, positions = list(projections), list(positions)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.reached(projections, positions):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise ProjectionLagging(projections, positions, timeout_s)
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, self._safety_poll_s))
            except TimeoutError:
                try:
                    await asyncio.wait_for(self.listen_again(), max(remaining, 0.01))
                    await asyncio.wait_for(self.refresh(), max(remaining, 0.01))
                except Exception:  # Postgres unreachable: keep waiting until the deadline, then say we lag
                    log.warning("read-your-writes: cannot read projection positions", exc_info=True)

    async def parked_among(self, streams: Iterable[str]) -> list[tuple[str, str, str]]:
        """(projection, stream, error) for those of `streams` that are parked: their events are not applied.

        Parking is rare, so this asks Postgres only while something may be parked (runners announce it)
        and otherwise at most once a second."""
        now = asyncio.get_running_loop().time()
        if not self._maybe_parked and now - self._parked_checked_at < 1.0:
            return []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT projection, stream, error FROM parked_streams WHERE stream = ANY($1::text[])", list(streams)
            )
            self._maybe_parked = bool(rows) or bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM parked_streams)"))
        self._parked_checked_at = now
        return [(r["projection"], r["stream"], r["error"]) for r in rows]
