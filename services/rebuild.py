"""Rebuild projections from offset 0: replay the whole log into new tables, then put them in place of the old ones.

Several projections rebuilt together share one reader of the log (each record decoded once). The replay
can be spread over several processes, each owning a share of the partitions: projections tolerate any
order between partitions, and each partition's position is its own.

The replay writes into a schema of its own (the shadow: the projections' tables and the runtime's, made by their
migrations), so the live tables keep serving what they showed, and the projector beside them keeps applying the
log, until one short transaction swaps the rebuilt tables in at a known position (`_swapped_in`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import asyncpg

from modelreg.events.log import EventLog
from modelreg.projections.identity import IdentityProjection
from modelreg.projections.log_reader import SharedLogReader
from modelreg.projections.positions import PROGRESS_CHANNEL, RUNTIME_MIGRATIONS, reset, stored_positions
from modelreg.projections.projection import Projection
from modelreg.projections.runtime import Decoded, ProjectionRunner, decode_record, type_tag
from modelreg.services.bootstrap import ProcessParts, process_parts
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import projection
from modelreg.services.projector import tune_gc
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# A replay reads full batches and applies each to every projection before reading the next: reading ahead
# (log_reader.LANE_BATCHES) cost it CPU and gained nothing.
REPLAY_BATCH = 20_000

# Which key is live, with which grants, and which teams and models are private is read from the identity tables on
# every request. Replayed batch by batch in front of a running API, they went through the log's past: emptied, then
# a key revoked long ago was live again until its revocation's turn came, a private team read by everyone until the
# event that made it private was replayed. Their events are few: they are read first, then applied in the transaction
# that resets the tables, so that requests see the tables as they were, then as rebuilt.
AT_ONCE = frozenset({IdentityProjection.name})

# The others are too large for one transaction. Replayed batch by batch into the live tables after emptying them, the
# registry went through the log's past in front of the API and the write side, which authorizes from it: a protected
# `production` was unprotected until its protection's turn came, and any member could move it meanwhile. They are
# replayed into the shadow, then swapped in (`_swapped_in`); the retired tables are dropped in that transaction.
RUNTIME_TABLES = ("projection_positions", "parked_events", "parked_streams", "dead_letters", "skipped_events")
# The swap waits this long for a reader of a live table before giving up and trying again (readers queue behind it
# meanwhile), and holds the projector at most HOLD_S while the shadow applies what the projector applied last.
SWAP_LOCK_TIMEOUT = "2s"
SWAP_ATTEMPTS = 10
HOLD_S = 30.0


async def rebuild(
    settings: Settings, names: str | Sequence[str], *, processes: int = 1, on_progress: Progress | None = None
) -> float:
    """Returns the seconds the replay took (from its start until every partition caught up).

    A projector running meanwhile keeps applying the log to the live tables; the swap continues it from where the
    shadow stands. The projections in AT_ONCE are reset and applied in one transaction, before the others.
    """
    if processes < 1:
        raise ValueError(f"--processes must be at least 1, got {processes}")
    names = [names] if isinstance(names, str) else list(names)
    targets = [projection(name) for name in names]  # an unknown name fails before anything is reset
    async with process_parts(
        settings, pool_size=len(names) + 2, durable_commits=False, refuses_a_short_log=False
    ) as parts:
        started = time.perf_counter()
        for name in [name for name in names if name in AT_ONCE]:
            await _rebuilt_at_once(parts, name)
        names = [name for name in names if name not in AT_ONCE]
        targets = [target for target in targets if target.name not in AT_ONCE]
        if not names:
            return time.perf_counter() - started
        ends = await parts.event_log.end_positions()
        shares = [share for share in (sorted(ends)[i::processes] for i in range(processes)) if share]
        async with _alone(settings, names):
            async with parts.pool.acquire() as conn:
                await _shadow_made(conn, targets)
            shadow = await _shadow_pool(settings, names, len(names) + 2)
            try:
                took = await _replayed(parts, shadow, settings, names, shares, ends, on_progress)
                await _swapped_in(parts, shadow, targets, sorted(ends))
                return took
            finally:
                await shadow.close()


def shadow_of(names: Sequence[str]) -> str:
    """The schema a rebuild of these projections replays into: its own, so that rebuilds of other projections run
    beside it (six commands side by side, one per projection). At most 55 characters: PostgreSQL's limit is 63."""
    return "modelreg_rebuild_" + "_".join(sorted(names))


def retired_of(names: Sequence[str]) -> str:
    """Where the swap moves the live tables it replaces, until it drops them in the same transaction."""
    return "modelreg_retired_" + "_".join(sorted(names))


# A projection's rebuild holds a lock on it (this class, the name's hash) while it replays: another rebuild of it
# would make its shadow anew under it, or swap the same tables.
REBUILD_LOCKS = 0x6D726562  # "mreb"


@contextlib.asynccontextmanager
async def _alone(settings: Settings, names: Sequence[str]) -> AsyncIterator[None]:
    """Hold these projections for this rebuild (session locks on a connection of its own: gone with the process)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        for name in sorted(names):
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", REBUILD_LOCKS, name):
                raise RuntimeError(
                    f"another `modelreg rebuild` is rebuilding {name} in this database: run this one once it has "
                    "finished"
                )
        yield
    finally:
        await conn.close()


async def _replayed(
    parts: ProcessParts,
    shadow: asyncpg.Pool,
    settings: Settings,
    names: Sequence[str],
    shares: Sequence[Sequence[int]],
    ends: dict[int, int],
    on_progress: Progress | None,
) -> float:
    """Replay the log into the shadow up to `ends`, helpers taking all shares but the first; returns the seconds."""
    helpers = [_Helper.spawned(settings, names, share) for share in shares[1:]]
    stopping = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        # The helpers start (an interpreter each, its imports and connections) before the replay is timed.
        for helper in helpers:
            helper.start()
        await _until_ready(helpers)
        tune_gc()
        started = time.perf_counter()
        for helper in helpers:
            helper.line.send(GO)
        task = asyncio.create_task(_shadow_reader(parts, shadow, names, shares[0]).run(stopping))
        workers = [helper.process for helper in helpers]
        await _until_caught_up(shadow, parts.event_log.topic, names, ends, on_progress, task, workers)
        return time.perf_counter() - started
    except BaseException:
        # A rebuild that failed is run again: what its helpers would still apply is not worth waiting for.
        for helper in helpers:
            if helper.process.pid is not None:
                helper.process.terminate()
        raise
    finally:
        stopping.set()
        try:
            if task is not None:
                await task
        finally:
            for helper in helpers:
                if helper.process.pid is not None:
                    helper.process.join(30)
                    if helper.process.is_alive():
                        helper.process.terminate()


async def _shadow_made(conn: asyncpg.Connection, targets: Sequence[Projection]) -> None:
    """An empty shadow: the targets' tables and the runtime's, made by their migrations as a new database's are."""
    migrations = [*RUNTIME_MIGRATIONS, *(m for target in targets for m in target.migrations)]
    shadow = shadow_of([target.name for target in targets])
    async with conn.transaction():
        live = _quoted(await conn.fetchval("SELECT current_schema()"))
        await conn.execute(f"DROP SCHEMA IF EXISTS {shadow} CASCADE")  # what a rebuild that stopped midway left
        await conn.execute(f"CREATE SCHEMA {shadow}")
        # Each batch reads which migrations the database has (runtime.py, MigratedBeyond): the live ones.
        await conn.execute(f"CREATE VIEW {shadow}.schema_migrations AS SELECT * FROM {live}.schema_migrations")
        await conn.execute(f"CREATE VIEW {shadow}.schema_generation AS SELECT * FROM {live}.schema_generation")
        await conn.execute(f"SET LOCAL search_path TO {shadow}")
        for migration in sorted(migrations, key=lambda m: (m.component, m.number)):
            await conn.execute(migration.sql)


async def _shadow_pool(settings: Settings, names: Sequence[str], size: int) -> asyncpg.Pool:
    """Connections that name tables in the shadow only: once its tables are swapped in, a statement of the replay
    that came late fails instead of writing to the live ones."""
    return await create_pool(
        settings.database_url, min_size=1, max_size=size, durable_commits=False, schema=shadow_of(names)
    )


def _shadow_reader(
    parts: ProcessParts, shadow: asyncpg.Pool, names: Sequence[str], partitions: Sequence[int]
) -> SharedLogReader:
    """The projections named, replaying `partitions` into the shadow, each batch applied to all before the next."""
    runners = [ProjectionRunner(projection(name), parts.event_log, shadow) for name in names]
    return SharedLogReader(runners, parts.event_log, max_batch=REPLAY_BATCH, lane_batches=0, partitions=partitions)


async def _swapped_in(
    parts: ProcessParts, shadow: asyncpg.Pool, targets: Sequence[Projection], partitions: Sequence[int]
) -> None:
    """Put the shadow's tables in place of the live ones, at a known position.

    The shadow follows the log until it is near the live projector; then one transaction locks the live positions
    (the projector's batches wait: they lock them first), lets the shadow reach them, stops it, and moves the tables.
    The positions become the shadow's: at or past the live ones, so readers never see the registry go back; a
    projector that was further behind finds its positions moved and reads on from them, each event applied once."""
    names = [target.name for target in targets]
    topic = parts.event_log.topic
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        stopping = asyncio.Event()
        follower = asyncio.create_task(_shadow_reader(parts, shadow, names, partitions).run(stopping))
        try:
            # Near the live positions first, holding nothing: the projector then waits for a few events at most.
            live = await _live_positions(parts.pool, names, topic)
            await _shadow_reached(shadow, topic, await _within(parts, live), follower, None)
            async with parts.pool.acquire() as conn, conn.transaction():
                live = await _live_positions(conn, names, topic, lock=True)
                await _shadow_reached(shadow, topic, await _within(parts, live), follower, time.monotonic() + HOLD_S)
                stopping.set()
                await follower
                await _swap(conn, targets, topic)
            log.info("rebuild: %s swapped in", ", ".join(names))
            return
        except asyncpg.LockNotAvailableError as exc:
            log.warning("rebuild: a live table stayed busy (%s); swap %d of %d", exc, attempt, SWAP_ATTEMPTS)
        finally:
            stopping.set()
            await follower
    raise RuntimeError(
        f"projections {', '.join(names)}: rebuilt, but the live tables stayed busy {SWAP_ATTEMPTS} times: they are "
        "as they were; look for long queries on them and run the rebuild again"
    )


async def _live_positions(
    db: asyncpg.Pool | asyncpg.Connection, names: Sequence[str], topic: str, *, lock: bool = False
) -> dict[str, dict[int, int]]:
    """The live projections' positions; `lock`: until the transaction ends, in the order every batch locks them."""
    rows = await db.fetch(
        "SELECT projection, partition, next_offset FROM projection_positions WHERE projection = ANY($1) "
        "AND topic = $2 ORDER BY projection, partition" + (" FOR UPDATE" if lock else ""),
        list(names),
        topic,
    )
    live: dict[str, dict[int, int]] = {name: {} for name in names}
    for row in rows:
        live[row["projection"]][row["partition"]] = row["next_offset"]
    return live


async def _within(parts: ProcessParts, live: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """The live positions, none past the log's end: one past it was left by another log of the same topic's name
    (`modelreg migrate-log` moved the log to Kafka, then rebuilds); the swap moves it to the shadow's."""
    ends = await parts.event_log.end_positions()
    return {name: {p: min(offset, ends.get(p, 0)) for p, offset in offsets.items()} for name, offsets in live.items()}


async def _shadow_reached(
    shadow: asyncpg.Pool,
    topic: str,
    live: dict[str, dict[int, int]],
    follower: asyncio.Task[None],
    deadline: float | None,
) -> None:
    """Wait until the shadow has applied at least what the live projections have."""
    while True:
        async with shadow.acquire() as conn:
            reached = {name: await stored_positions(conn, name, topic) for name in live}
        if all(reached[name].get(p, 0) >= offset for name, offsets in live.items() for p, offset in offsets.items()):
            return
        if follower.done():
            follower.result()  # surfaces the follower's error
            raise RuntimeError(f"projections {', '.join(live)}: the replay stopped before catching up")
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(
                f"projections {', '.join(live)}: the replay did not reach the live projector within {HOLD_S:.0f} s "
                "of holding it: the live tables are as they were; run the rebuild again"
            )
        await asyncio.sleep(0.01)


async def _swap(conn: asyncpg.Connection, targets: Sequence[Projection], topic: str) -> None:
    """In the caller's transaction, which holds the live positions: the shadow's tables, positions, parked
    streams, dead letters and skips become the live ones; the live tables are dropped."""
    names = [target.name for target in targets]
    shadow, retired = shadow_of(names), retired_of(names)
    live = _quoted(await conn.fetchval("SELECT current_schema()"))
    await conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
    await conn.execute(f"DROP SCHEMA IF EXISTS {retired} CASCADE")
    await conn.execute(f"CREATE SCHEMA {retired}")
    for table in (table for target in targets for table in target.tables):
        # Indexes, constraints and statistics move with their table. Other connections' prepared statements are
        # planned again on the table now named so (PostgreSQL invalidates them as the old one moves).
        await conn.execute(f"ALTER TABLE {live}.{table} SET SCHEMA {retired}")
        await conn.execute(f"ALTER TABLE {shadow}.{table} SET SCHEMA {live}")
    # Updated, never deleted: a batch waiting for these rows would find none and start the projection over at 0. Those
    # the shadow has none for go back to 0, as a reset sets them: another log's (another topic, partition or end).
    await conn.execute(
        f"UPDATE {live}.projection_positions AS pp SET next_offset = 0, updated_at = now() "
        "WHERE pp.projection = ANY($1) AND NOT EXISTS (SELECT 1 FROM "
        f"{shadow}.projection_positions AS s WHERE s.projection = pp.projection AND s.topic = pp.topic "
        "AND s.partition = pp.partition)",
        names,
    )
    await conn.execute(
        f"INSERT INTO {live}.projection_positions (projection, topic, partition, next_offset) "
        f"SELECT projection, topic, partition, next_offset FROM {shadow}.projection_positions "
        "WHERE projection = ANY($1) AND topic = $2 "
        "ON CONFLICT (projection, topic, partition) "
        "DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        names,
        topic,
    )
    for table in RUNTIME_TABLES[1:]:
        await conn.execute(f"DELETE FROM {live}.{table} WHERE projection = ANY($1)", names)
        await conn.execute(
            f"INSERT INTO {live}.{table} SELECT * FROM {shadow}.{table} WHERE projection = ANY($1)", names
        )
    for name in names:  # read-your-writes waiters hear the new positions at the commit
        positions = await stored_positions(conn, name, topic)
        if positions:
            progress = ",".join(f"{p}:{offset}" for p, offset in sorted(positions.items()))
            await conn.execute("SELECT pg_notify($1, $2)", PROGRESS_CHANNEL, f"{name}|{topic}|{progress}")
        await conn.execute("SELECT pg_notify($1, $2)", PROGRESS_CHANNEL, f"parked:{name}")
    # A function the migrations made in the shadow is dropped alone: one a swapped-in index used would fail the
    # swap here, where CASCADE would drop the index with it.
    for function in await conn.fetch(
        "SELECT oid::regprocedure::text AS signature FROM pg_proc WHERE pronamespace = $1::regnamespace", shadow
    ):
        await conn.execute(f"DROP FUNCTION {function['signature']}")
    await conn.execute(f"DROP SCHEMA {shadow} CASCADE")
    await conn.execute(f"DROP SCHEMA {retired} CASCADE")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _rebuilt_at_once(parts: ProcessParts, name: str) -> None:
    """Read the records of the log the projection handles, then reset it and apply them in one transaction."""
    runner = ProjectionRunner(projection(name), parts.event_log, parts.pool)
    decoded = await _records_for(runner, parts.event_log)
    async with parts.pool.acquire() as conn, conn.transaction():
        await reset(conn, name, runner.projection.tables)
        if decoded:
            await runner.apply_in(conn, decoded, from_zero=True)


async def _records_for(runner: ProjectionRunner, log: EventLog) -> Decoded:
    """Every record up to the log's end now that the runner handles, decoded, and each partition's last record
    (its position is where the projection then stands)."""
    ends = {p: end for p, end in (await log.end_positions()).items() if end}
    if not ends:
        return []

    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    decoded: Decoded = []
    subscription = await log.subscribe(f"rebuild.{runner.name}", from_zero, sorted(ends))
    try:
        while ends:
            for record in await subscription.next_batch(1.0, REPLAY_BATCH):
                _, partition, offset = record.position
                if offset >= ends.get(partition, 0):
                    continue
                if runner.concerns(type_tag(record)):
                    decoded.append((record, decode_record(record)))
                elif offset == ends[partition] - 1:
                    decoded.append((record, None))
                if offset == ends[partition] - 1:
                    del ends[partition]
    finally:
        await subscription.close()
    return decoded


# What a helper and the rebuild say to each other on the helper's pipe. A pipe, not shared events: a process
# killed while it held an event's lock would leave the other side waiting forever, and the pipe's end of file
# tells a helper that the rebuild is gone.
READY, GO = "ready", "go"


@dataclass
class _Helper:
    """A process that replays a share of the partitions once told to go."""

    process: BaseProcess
    line: Connection  # our end of its pipe
    their_line: Connection  # its end, handed to it as it starts
    ready: bool = False

    @classmethod
    def spawned(cls, settings: Settings, names: Sequence[str], partitions: Sequence[int]) -> _Helper:
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=_replay_in_a_process, args=(settings, names, partitions, theirs))
        return cls(process, ours, theirs)

    def start(self) -> None:
        self.process.start()
        # Its end is its own now: once it exits, ours reads the end of file.
        self.their_line.close()

    def heard_ready(self) -> bool:
        """Whether it has said it is ready (once connected)."""
        if not self.ready and self.line.poll():
            try:
                self.ready = self.line.recv() == READY
            except EOFError:
                pass  # it exited: its exit code says so
        return self.ready


async def _until_ready(helpers: Sequence[_Helper], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not all([helper.heard_ready() for helper in helpers]):
        for helper in helpers:
            if helper.process.exitcode is not None:
                raise RuntimeError(
                    f"a replay process failed as it started (exit {helper.process.exitcode}): nothing was reset; "
                    "see its error above, or run the rebuild with --processes 1"
                )
        if time.monotonic() > deadline:
            waiting = sum(not helper.ready for helper in helpers)
            raise RuntimeError(
                f"{waiting} of {len(helpers)} replay processes were not connected to Kafka and PostgreSQL after "
                f"{timeout_s:.0f} s: nothing was reset; check that this host reaches both, or run the rebuild "
                "with --processes 1"
            )
        await asyncio.sleep(0.02)


async def _until_caught_up(
    pool: asyncpg.Pool,
    topic: str,
    names: Sequence[str],
    ends: dict[int, int],
    on_progress: Progress | None,
    runner: asyncio.Task[None] | None = None,
    workers: Sequence[BaseProcess] = (),
    rebuild_line: Connection | None = None,
) -> None:
    """`rebuild_line`: a helper's end of its pipe, on which nothing comes after GO but the end of file once the
    rebuild is gone (killed, or failed): the helper stops then, rather than replay into a shadow the next rebuild
    makes anew under it."""
    total = sum(ends.values()) * len(names)
    while True:
        applied = 0
        async with pool.acquire() as conn:
            for name in names:
                done = await stored_positions(conn, name, topic)
                applied += sum(min(done.get(p, 0), end) for p, end in ends.items())
        if on_progress:
            on_progress(applied, total)
        if applied >= total:
            return
        if runner is not None and runner.done():
            runner.result()  # surfaces the runner's error
            raise RuntimeError(f"projections {', '.join(names)}: the replay stopped before catching up")
        if rebuild_line is not None and rebuild_line.poll():
            log.warning("projections %s: the rebuild is gone; this replay process stops", ", ".join(names))
            return
        for worker in workers:
            if worker.exitcode not in (None, 0):
                raise RuntimeError(
                    f"projections {', '.join(names)}: a replay process failed (exit {worker.exitcode}); "
                    "run the rebuild again"
                )
        await asyncio.sleep(0.05)


def _replay_in_a_process(settings: Settings, names: Sequence[str], partitions: Sequence[int], line: Connection) -> None:
    tune_gc()
    asyncio.run(_replay(settings, names, partitions, line))


async def _replay(settings: Settings, names: Sequence[str], partitions: Sequence[int], line: Connection) -> None:
    """Once told to go, apply the log to `partitions` in the shadow until each reaches the end it had then."""
    async with process_parts(
        settings, pool_size=len(names) + 1, durable_commits=False, refuses_a_short_log=False
    ) as parts:
        shadow = await _shadow_pool(settings, names, len(names) + 1)
        try:
            line.send(READY)
            while not line.poll():
                await asyncio.sleep(0.01)
            try:
                if line.recv() != GO:
                    return
            except EOFError:
                return  # the rebuild ended before the replay started
            ends = {p: end for p, end in (await parts.event_log.end_positions()).items() if p in partitions}
            stopping = asyncio.Event()
            task = asyncio.create_task(_shadow_reader(parts, shadow, names, partitions).run(stopping))
            try:
                await _until_caught_up(shadow, parts.event_log.topic, names, ends, None, task, rebuild_line=line)
            finally:
                stopping.set()
                await task
        finally:
            await shadow.close()
