"""One copy at a time of a command sent with an idempotency key.

A command sent again with the same key (a client retrying after its read timed out, a proxy retrying, an
attacker sending copies at once) is answered as the first copy was, because its handler finds the first
copy's events in the read models. That holds only if the first copy is there when the second one looks: copies
carried out side by side each find nothing and each append. So a copy claims its key for as long as it runs
(check, append, read-your-writes), in PostgreSQL, which every API process shares; another copy waits for the
claim to go, then finds the first one's events.

The same claims give turns (Command.turns_of): commands about one artifact version's links, aliases and
existence, about one alias of a registered model (its moves and its protection), or logging into one collection,
whoever sends them, are decided one at a time, each on read models that show the one before it.

A copy holds its claim by renewing it every few seconds; the claim of a holder that died (a killed API
process) is taken over once it has not been renewed for STALE_AFTER, well within the client's retries. A key is
claimed per principal, after the caller's rights are checked: nobody can hold up another's commands by sending
copies of them (a version's id is visible to its readers).
A command's claims (its copies' and its turn) are asked for together, all or none, in one statement: a link sent
with a key costs one round trip, not two, and a command holding none waits for none (no command holds one claim
while it waits for another, so none wait on each other).

Claims are held per API process, not per command: copies and turns inside one process already queue on a lock
of that process (OneCopyAtATime), so PostgreSQL only has to keep the other processes out. That lets a process let
go of its claims a moment after its commands answer (RELEASE_AFTER_S), those of all the commands that ended
meanwhile in one statement, and take back at once a claim it has not let go of yet: a link followed by an alias
move on the same version, as training code sends them, claims twice and lets go once, after the answer rather than
before it. Another process waiting for the key polls every POLL_S, so it waits a few milliseconds longer.
Commands with neither (the web UI's `setTags`, say) pay nothing.

A command whose events the event log still holds when it ends (a broker that stopped answering: the command is
answered UNAVAILABLE, its records are written when the broker answers) keeps its claims until they are written or
failed (Holding.until): a copy sent meanwhile is refused, retriable, instead of being decided again on read models
that do not show the first copy yet and appended behind it (both written: the change twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID, uuid4, uuid5

import asyncpg

from modelreg.errors import Conflict
from modelreg.projections.migrations import Migration

# A holder renews its claim every RENEW_S; one not renewed for STALE_AFTER has died. The client resends a command
# for about 36 s (client/transport.py), so a copy sent to another API process after a kill is answered.
RENEW_S = 2.0
STALE_AFTER = timedelta(seconds=10)
POLL_S = 0.02
# How long a process keeps the claims of its ended commands before it lets go of them together; how long it waits
# to ask again when that failed.
RELEASE_AFTER_S = 0.005
RELEASE_RETRY_S = 1.0

# Unlogged: a claim lives for one command, so it is not worth a disk flush per command, and after a crash of
# PostgreSQL no command is in flight any more (the table comes back empty).
MIGRATIONS = (
    Migration(
        "commands_in_flight",
        1,
        """
        CREATE UNLOGGED TABLE commands_in_flight (
            key uuid PRIMARY KEY,
            holder uuid NOT NULL,
            since timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
)

_CLAIMED_ONE = """
INSERT INTO commands_in_flight (key, holder) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, since = now()
    WHERE commands_in_flight.holder = EXCLUDED.holder OR commands_in_flight.since < now() - $3::interval
RETURNING key
"""
_RELEASED_ONE = "DELETE FROM commands_in_flight WHERE key = $1 AND holder = $2"
# Keys in order: two statements claiming the same keys take their rows in one order, so neither waits on the other.
_CLAIMED = """
INSERT INTO commands_in_flight (key, holder)
SELECT key, $2 FROM unnest($1::uuid[]) AS wanted (key) ORDER BY key
ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, since = now()
    WHERE commands_in_flight.holder = EXCLUDED.holder OR commands_in_flight.since < now() - $3::interval
RETURNING key
"""
_RELEASED = "DELETE FROM commands_in_flight WHERE key = ANY($1::uuid[]) AND holder = $2"
_RENEWED = "UPDATE commands_in_flight SET since = now() WHERE key = ANY($1::uuid[]) AND holder = $2"


def claim_key(key: UUID, actor: object) -> UUID:
    """The key under which one actor's copies of a command are claimed."""
    return uuid5(key, str(actor))


class InFlight(Protocol):
    async def claim(self, keys: Sequence[UUID], holder: UUID) -> set[UUID]:
        """The keys among `keys` that others hold (a claim not renewed for STALE_AFTER is nobody's; one `holder`
        holds already is its own again). When none, `holder` now holds every one of them; else it holds none of
        them."""

    async def renew(self, keys: Sequence[UUID], holder: UUID) -> None:
        """`holder` is still carrying its command out."""

    async def release(self, keys: Sequence[UUID], holder: UUID) -> None: ...


class InFlightInPostgres:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, keys: Sequence[UUID], holder: UUID) -> set[UUID]:
        if len(keys) == 1:  # most commands (a link without a key): the plainer statement costs PostgreSQL less
            return set() if await self.pool.fetchval(_CLAIMED_ONE, keys[0], holder, STALE_AFTER) else set(keys)
        wanted = sorted(set(keys))
        got = [row["key"] for row in await self.pool.fetch(_CLAIMED, wanted, holder, STALE_AFTER)]
        if len(got) < len(wanted) and got:
            # Hold none while others hold some: else two commands could each hold what the other waits for.
            await self.release(got, holder)
        return set(wanted).difference(got)

    async def renew(self, keys: Sequence[UUID], holder: UUID) -> None:
        await self.pool.execute(_RENEWED, list(keys), holder)

    async def release(self, keys: Sequence[UUID], holder: UUID) -> None:
        if len(keys) == 1:
            await self.pool.execute(_RELEASED_ONE, keys[0], holder)
        else:
            await self.pool.execute(_RELEASED, list(keys), holder)


class InFlightInMemory:
    """For the write side's unit tests: one process, no database."""

    def __init__(self) -> None:
        self.held: dict[UUID, UUID] = {}
        self.asked = 0  # claims asked for, held or not
        self.renewals = 0
        self.releases = 0  # statements letting go of claims

    async def claim(self, keys: Sequence[UUID], holder: UUID) -> set[UUID]:
        self.asked += 1
        busy = {key for key in keys if self.held.get(key, holder) != holder}
        if not busy:
            self.held.update(dict.fromkeys(keys, holder))
        return busy

    async def renew(self, keys: Sequence[UUID], holder: UUID) -> None:
        if any(self.held.get(key) == holder for key in keys):
            self.renewals += 1

    async def release(self, keys: Sequence[UUID], holder: UUID) -> None:
        self.releases += 1
        for key in keys:
            if self.held.get(key) == holder:
                del self.held[key]


@dataclass(frozen=True)
class Claim:
    """A key a command holds while it runs. `what`: the command, as a refusal names it; `turn`: the key is a turn
    other commands share (Command.turns_of), not this command's copies'."""

    key: UUID
    what: str
    turn: bool = False

    def refusal(self) -> Conflict:
        """Nothing of this command was written: a refusal to send again, never NOT_YET_VISIBLE (which says the
        command was accepted and only its showing is late)."""
        if self.turn:
            return Conflict(
                "another change to the same artifact version, alias, collection or Launch queue is being carried out, "
                f"so this {self.what} was not (nothing was written): send it again shortly; it is decided on what "
                "that change leaves",
                retriable=True,
            )
        return Conflict(
            f"another copy of this {self.what} is still being carried out, so this one was not (nothing was "
            "written): send it again, with the same id, shortly; it will be answered as that copy was",
            retriable=True,
        )


class Holding:
    """A command's claims as it runs: `until(done)` keeps them past its end, until `done` is (its events the log
    still holds)."""

    def __init__(self) -> None:
        self.past_the_end: Awaitable[object] | None = None

    def until(self, done: Awaitable[object]) -> None:
        self.past_the_end = done


class OneCopyAtATime:
    """Copies that reach one process queue here first, so that only one of them at a time asks PostgreSQL:
    a thousand copies sent at once wait on a lock, not in a thousand queries every 20 ms."""

    def __init__(self, in_flight: InFlight) -> None:
        self.in_flight = in_flight
        self.holder = uuid4()  # this process, in every claim it makes
        self._here: dict[UUID, tuple[asyncio.Lock, int]] = {}  # key -> its lock, how many copies use it
        # The keys commands here hold. One task renews them all every RENEW_S, rather than a task per command: most
        # commands end in milliseconds, and a task made and cancelled for each of them cost about 1% of the API's
        # CPU.
        self._holding: set[UUID] = set()
        self._renewer: asyncio.Task[None] | None = None
        # Claims of ended commands, let go of together by one task; and those in the statement on its way.
        self._to_release: set[UUID] = set()
        self._releasing: set[UUID] = set()
        self._released: asyncio.Event | None = None  # set when the statement on its way has been answered
        self._releaser: asyncio.Task[None] | None = None
        self._kept: set[asyncio.Task[None]] = set()  # claims kept past their command's end (Holding.until)

    def kept(self) -> int:
        """Commands whose claims are kept past their end, until the log has written or failed their events."""
        return len(self._kept)

    def waiting(self) -> int:
        """Keys with copies here (held or waiting)."""
        return len(self._here)

    def renewing(self) -> bool:
        """Whether a task renews claims now (only while some are held)."""
        return self._renewer is not None

    def releasing(self) -> bool:
        """Whether a task lets go of claims now (only while ended commands' claims wait for it)."""
        return self._releaser is not None

    async def let_go(self, timeout_s: float | None = None) -> None:
        """Let go of the claims of ended commands now (when the process stops, and in tests). Past `timeout_s`
        (PostgreSQL away as the process stops) they are left to go stale (STALE_AFTER). Claims kept for events the
        log still holds go too: the process is stopping."""
        for keeping in list(self._kept):
            keeping.cancel()
        if self._kept:
            await asyncio.wait(self._kept)
        try:
            async with asyncio.timeout(timeout_s):
                while self._releaser is not None:
                    await asyncio.shield(self._releaser)
        except TimeoutError:
            if self._releaser is not None:
                self._releaser.cancel()

    @asynccontextmanager
    async def held(self, claims: Sequence[Claim], timeout_s: float) -> AsyncIterator[Holding]:
        """Hold every claim's key while the body runs (and after, until what the body gave Holding.until is done);
        wait up to `timeout_s` for other copies, or the turn's other commands, to finish first."""
        holding = Holding()
        if not claims:
            yield holding
            return
        deadline = time.monotonic() + timeout_s
        async with AsyncExitStack() as held:
            for claim in sorted(claims, key=lambda c: c.key):  # in one order: no two commands wait on each other
                await held.enter_async_context(self._here_first(claim, deadline))
            await held.enter_async_context(self._claimed(claims, deadline))
            try:
                yield holding
            finally:
                if holding.past_the_end is not None:
                    self._keep(held.pop_all(), holding.past_the_end)

    def _keep(self, held: AsyncExitStack, until: Awaitable[object]) -> None:
        """Keeps the claims `held` holds (this process's locks, and its claims in `in_flight`, renewed) until `until`
        is done, in a task of its own: the command has been answered."""

        async def kept() -> None:
            try:
                await asyncio.wait([asyncio.ensure_future(until)])
            finally:
                await held.aclose()

        keeping = asyncio.create_task(kept())
        self._kept.add(keeping)
        keeping.add_done_callback(self._kept.discard)

    @asynccontextmanager
    async def _here_first(self, claim: Claim, deadline: float) -> AsyncIterator[None]:
        """The key's lock in this process, which its copies here queue on."""
        lock, users = self._here.get(claim.key, (asyncio.Lock(), 0))
        self._here[claim.key] = (lock, users + 1)
        try:
            if users == 0:  # nobody here holds it or waits for it (the common case): taken at once, without a timer
                await lock.acquire()
            else:  # (a lock just let go of is not locked, yet its next waiter comes first)
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        await lock.acquire()
                except TimeoutError:
                    raise claim.refusal() from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._here[claim.key]
            if users == 1:
                del self._here[claim.key]
            else:
                self._here[claim.key] = (lock, users - 1)

    @asynccontextmanager
    async def _claimed(self, claims: Sequence[Claim], deadline: float) -> AsyncIterator[None]:
        """Hold every claim's key in `in_flight`, shared by every process, asking again until `deadline`."""
        keys = [claim.key for claim in claims]
        # Ours still, from a command here that ended a moment ago: claimed again below (its `since` renewed) and
        # not let go of. One in the statement on its way is claimed once that statement is answered, else the
        # statement could delete the claim made again.
        self._to_release.difference_update(keys)
        try:
            while self._released is not None and self._releasing.intersection(keys):
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        await self._released.wait()
                except TimeoutError:
                    raise next(claim for claim in claims if claim.key in self._releasing).refusal() from None
            while busy := await self.in_flight.claim(keys, self.holder):
                if time.monotonic() >= deadline:
                    raise next(claim for claim in claims if claim.key in busy).refusal()
                await asyncio.sleep(POLL_S)
        except BaseException:
            self._let_go_soon(keys)  # any of them still ours from before
            raise
        self._holding.update(keys)
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_while_held())
        try:
            yield
        finally:
            self._holding.difference_update(keys)
            self._let_go_soon(keys)

    def _let_go_soon(self, keys: Sequence[UUID]) -> None:
        self._to_release.update(keys)
        if self._releaser is None:
            self._releaser = asyncio.create_task(self._let_go_together())

    async def _let_go_together(self) -> None:
        """Every RELEASE_AFTER_S while claims wait to be let go of: let go of them in one statement. A task of its
        own, so a request cancelled as it ends (its client went away) leaves no key held until it is stale."""
        try:
            while self._to_release:
                await asyncio.sleep(RELEASE_AFTER_S)
                if not self._to_release:
                    break  # every one of them taken back meanwhile
                self._releasing, self._to_release = self._to_release, set()
                self._released = asyncio.Event()
                failed = False
                try:
                    await self.in_flight.release(sorted(self._releasing), self.holder)
                except Exception:
                    # PostgreSQL away for a moment: asked again (once a claim has gone stale, STALE_AFTER, and another
                    # process has taken it over, deleting it changes nothing).
                    self._to_release |= self._releasing
                    failed = True
                finally:
                    self._releasing = set()
                    self._released.set()
                    self._released = None
                if failed:
                    await asyncio.sleep(RELEASE_RETRY_S)
        finally:
            self._releaser = None

    async def _renew_while_held(self) -> None:
        """Every RENEW_S, renew the claims held now (one statement); end once none is held."""
        try:
            while self._holding:
                await asyncio.sleep(RENEW_S)
                if self._holding:
                    # PostgreSQL away for a moment: the next pass, or staleness, decides.
                    with suppress(Exception):
                        await self.in_flight.renew(sorted(self._holding), self.holder)
        finally:
            self._renewer = None
