"""Exactly-once application of the log to Postgres, against real Kafka and real Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import asyncpg
import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from support.databases import create_database
from support.history import registry_history
from support.tables import dump, positions
from support.waiting import wait_until

from modelreg.events.codec import encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.kafka_log import MAX_MESSAGE_BYTES
from modelreg.events.log import EventLog, LogPosition, LogRecord
from modelreg.events.registry import VersionLinked, registered_model_stream
from modelreg.events.runs import RunFinished, RunStarted, RunSummaryUpdated, run_stream
from modelreg.projections.audit import AuditProjection
from modelreg.projections.migrations import migrate
from modelreg.projections.planner_statistics import MIN_PAGES
from modelreg.projections.projection import Statement, handles
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations
from modelreg.services.rebuild import rebuild
from modelreg.services.settings import Settings

ALICE = Actor(kind="user", id="alice")
ALL_TABLES = [table for cls in PROJECTIONS.values() for table in cls.tables]


@asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await task


async def caught_up(dsn: str, log: EventLog, projection: str = "registry") -> bool:
    ends = await log.end_positions()
    done = await positions(dsn, projection, log.topic)
    return all(done.get(p, 0) >= end for p, end in ends.items())


async def run_until_caught_up(runner: ProjectionRunner, dsn: str, log: EventLog) -> None:
    """Run the projection until it has applied the whole log, then stop it."""
    async with running(runner):
        await wait_until(lambda: caught_up(dsn, log, runner.name))


async def read_all(log: EventLog, count: int) -> list[LogRecord]:
    async def from_zero(partitions: list[int]) -> dict[int, int]:
        return {p: 0 for p in partitions}

    subscription = await log.subscribe("test-reader", from_zero)
    records: list[LogRecord] = []
    try:
        while len(records) < count:
            records.extend(await subscription.next_batch(1.0, count))
    finally:
        await subscription.close()
    return records


async def test_a_redelivered_batch_is_skipped_not_applied_twice(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(300))
    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await run_until_caught_up(runner, settings.database_url, event_log)
    before = await dump(settings.database_url, RegistryProjection.tables)

    await runner.apply_batch(await read_all(event_log, 300))  # Kafka hands us everything again

    assert runner.stats.skipped_redelivered == 300
    assert await dump(settings.database_url, RegistryProjection.tables) == before


async def test_a_malformed_message_from_a_foreign_producer_is_dead_lettered_and_the_projector_goes_on(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    history = registry_history(40)
    await event_log.append(history[:20])
    truncated = b'{"type": "runs.run_started", "version": 1, "payload": {"oops": 1}'
    (poison,) = await event_log.append_raw([LogRecord(LogPosition("", 0, 0), b"run:acme/nature/run-0", truncated)])
    await event_log.append(history[20:])

    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await run_until_caught_up(runner, settings.database_url, event_log)

    assert runner.stats.applied == 40
    row = await pool.fetchrow(
        'SELECT reason, value FROM dead_letters WHERE "offset" = $1 AND partition = $2', poison.offset, poison.partition
    )
    assert "not JSON" in row["reason"]
    ((dead, reason),) = await event_log.dead_lettered()
    assert (dead.position.partition, dead.position.offset) == (poison.partition, poison.offset)
    assert "not JSON" in reason
    assert dead.value.startswith(b'{"type": "runs.run_started"')


async def test_a_foreign_record_as_large_as_the_log_takes_is_dead_lettered_and_the_projector_goes_on(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    # Under the log's limit as written, over it with the dead letter's headers: refused on the dead-letter topic, it
    # failed its batch, which was read again for ever, every projection that reads it stalled behind it.
    history = registry_history(20)
    await event_log.append(history[:10])
    key = b"run:acme/nature/run-0"
    room = MAX_MESSAGE_BYTES - DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"", []) - 16
    (huge,) = await event_log.append_raw([LogRecord(LogPosition("", 0, 0), key, b"~" * room)])
    await event_log.append(history[10:])

    runner = ProjectionRunner(AuditProjection(), event_log, pool)
    await run_until_caught_up(runner, settings.database_url, event_log)

    assert await pool.fetchval("SELECT count(*) FROM audit_log") == len(history)
    ((dead, reason),) = await event_log.dead_lettered()
    assert (dead.position.partition, dead.position.offset, "not JSON" in reason) == (huge.partition, huge.offset, True)
    stored = await pool.fetchval('SELECT value FROM dead_letters WHERE "offset" = $1', huge.offset)
    assert stored == b"~" * room  # the bytes are kept here, if the dead-letter topic could not take them


class RegistryWithABug(RegistryProjection):
    """Fails to apply one run's start, as a bug in a handler would, until the bug is fixed."""

    fixed = False

    @handles(RunStarted)
    def run_started(self, e: RunStarted, envelope: Envelope) -> list[Statement]:
        if e.run_id == "run-1" and not self.fixed:
            return [Statement("SELECT 1 / 0", ())]
        return super().run_started(e, envelope)


async def test_an_event_that_fails_to_apply_parks_its_stream_and_other_streams_go_on(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    history = registry_history(400)
    await event_log.append(history)
    bad_stream = "run:acme/nature/run-1"
    bad_events = [e for e in history if e.stream == bad_stream]
    assert len(bad_events) >= 2, "the history should give run-1 a start and later events"

    projection = RegistryWithABug()
    runner = ProjectionRunner(projection, event_log, pool, retry_parked_every_s=3600)
    async with running(runner):
        await wait_until(lambda: caught_up(settings.database_url, event_log))

        parked = await pool.fetch("SELECT stream, error FROM parked_streams")
        assert [(r["stream"], "division by zero" in r["error"]) for r in parked] == [(bad_stream, True)]
        assert await pool.fetchval("SELECT count(*) FROM parked_events WHERE stream = $1", bad_stream) == len(
            bad_events
        )
        assert await pool.fetchval("SELECT count(*) FROM runs WHERE run_id = 'run-1'") == 0
        others = {e.payload.run_id for e in history if isinstance(e.payload, RunStarted)} - {"run-1"}
        assert await pool.fetchval("SELECT count(*) FROM runs") == len(others)

        projection.fixed = True
        assert await runner.retry_parked() == 1

    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE run_id = 'run-1'") == 1
    clean = await _replayed_from_scratch(settings, event_log)
    assert await dump(settings.database_url, RegistryProjection.tables) == {
        t: clean[t] for t in RegistryProjection.tables
    }


async def _replayed_from_scratch(settings: Settings, event_log: EventLog) -> dict:
    """The registry tables as a clean replay from offset 0 into a brand-new database builds them."""
    fresh = await create_database(settings.database_url)
    pool = await create_pool(fresh, min_size=1, max_size=4)
    try:
        await migrate(pool, all_migrations())
        runners = [ProjectionRunner(cls(), event_log, pool) for cls in PROJECTIONS.values()]
        for runner in runners:
            async with running(runner):
                await wait_until(lambda runner=runner: caught_up(fresh, event_log, runner.name))
    finally:
        await pool.close()
    return await dump(fresh, ALL_TABLES)


async def test_rebuilding_from_offset_zero_gives_the_same_tables_as_the_live_build(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append(registry_history(1000))
    runners = [ProjectionRunner(cls(), event_log, pool) for cls in PROJECTIONS.values()]
    async with running(runners[0]), running(runners[1]):
        await wait_until(lambda: caught_up(settings.database_url, event_log, "registry"))
        await wait_until(lambda: caught_up(settings.database_url, event_log, "audit"))
        live = await dump(settings.database_url, ALL_TABLES)
        assert sum(len(rows) for rows in live.values()) > 1000

        # The live runners keep running: they notice the reset and seek back, and nothing applies twice.
        # The registry is replayed by two processes, each owning half of the partitions.
        await rebuild(settings, "registry", processes=2)
        await rebuild(settings, "audit")
        assert await dump(settings.database_url, ALL_TABLES) == live


async def test_a_projector_killed_mid_stream_resumes_and_builds_what_a_clean_replay_builds(
    settings: Settings, event_log: EventLog
) -> None:
    history = registry_history(10_000)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"DATABASE_URL": settings.database_url, "MODELREG_TOPIC": settings.topic}
    if settings.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    command = [sys.executable, "-m", "modelreg.services.cli", "projector"]
    projector = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Append while it applies, and kill it once it is partway: mid-batch, mid-transaction or in between.
        for start in range(0, 5_000, 500):
            await event_log.append(history[start : start + 500])

        async def partway() -> bool:
            try:
                return sum((await positions(settings.database_url, "registry", settings.topic)).values()) >= 2_000
            except asyncpg.UndefinedTableError:
                return False

        await wait_until(partway)
        projector.send_signal(signal.SIGKILL)
        projector.wait()
        killed_at = sum((await positions(settings.database_url, "registry", settings.topic)).values())
        await event_log.append(history[5_000:])
        assert killed_at < 10_000

        projector = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in PROJECTIONS:  # every table is compared below
            await wait_until(lambda name=name: caught_up(settings.database_url, event_log, name), timeout_s=120)
    finally:
        projector.send_signal(signal.SIGTERM)
        projector.wait(30)

    live = await dump(settings.database_url, ALL_TABLES)
    assert len(live["audit_log"]) == 10_000  # none lost, none twice
    assert live == await _replayed_from_scratch(settings, event_log)


async def test_migrations_apply_once_even_when_run_again(pool: asyncpg.Pool) -> None:
    assert await migrate(pool, all_migrations()) == []
    count = await pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert count == len(all_migrations())


async def test_a_projection_passes_over_types_it_does_not_handle_and_still_advances(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    from modelreg.events.envelope import Actor
    from modelreg.events.identity import ApiKeyIssued, principal_stream
    from modelreg.projections.identity import IdentityProjection

    admin = Actor(kind="user", id="admin")
    issued = ApiKeyIssued(key_id="0123456789ab", principal=admin, key_sha256="a" * 64, role="admin")
    await event_log.append([*registry_history(200), Envelope.new(issued, stream=principal_stream(admin), actor=admin)])

    runner = ProjectionRunner(IdentityProjection(), event_log, pool)
    await run_until_caught_up(runner, settings.database_url, event_log)

    assert runner.stats.applied == 1
    assert await pool.fetchval("SELECT principal_id FROM api_keys") == "admin"


async def test_a_projection_growing_from_empty_gives_the_planner_its_tables_statistics(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    # Without statistics the planner found a run to finish through any index on (entity, project), reading
    # every run of the project: applying a rebuild's batch got quadratic.
    await event_log.append(registry_history(6000))
    runner = ProjectionRunner(RegistryProjection(), event_log, pool, max_batch=10_000)
    runner.statistics.every_s = 0  # a look after every batch, however the log splits them: the estimate is exact
    await run_until_caught_up(runner, settings.database_url, event_log)

    tables = await pool.fetch(
        """SELECT c.relname, pg_relation_size(c.oid) / 8192 AS pages, c.reltuples, s.last_analyze
           FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = ANY($1::text[])""",
        list(RegistryProjection.tables),
    )
    grown = {t["relname"] for t in tables if t["pages"] >= MIN_PAGES}
    assert "runs" in grown
    assert {t["relname"] for t in tables if t["last_analyze"] is not None} == grown
    # A table left small keeps the planner's guess of ten pages, at which an index lookup wins.
    assert all(t["reltuples"] == -1 for t in tables if t["relname"] not in grown)
    runs, estimated = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM runs), (SELECT reltuples FROM pg_class WHERE relname = 'runs')"
    )
    assert runs > 0 and estimated == runs


async def test_a_link_lookup_planned_while_model_versions_was_empty_uses_its_index_once_links_pile_up(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    # PostgreSQL plans a prepared statement again only once a table it reads is analyzed. A lookup planned
    # while model_versions was empty read every row of it on each mutation, as links piled up, because the
    # runner analyzed its tables by how many events it had applied, not by how much each table had grown.
    runner = ProjectionRunner(RegistryProjection(), event_log, pool)
    await event_log.append(
        [
            Envelope.new(
                RunStarted(entity="acme", project="nature", run_id=f"run-{n}"),
                stream=run_stream("acme", "nature", f"run-{n}"),
                actor=ALICE,
            )
            for n in range(4000)
        ]
    )
    await run_until_caught_up(runner, settings.database_url, event_log)
    await pool.execute("ANALYZE model_versions")  # as autovacuum, or an earlier release, may have done
    async with pool.acquire() as conn:
        await conn.execute(
            "PREPARE link_of(text, uuid) AS "
            "SELECT * FROM model_versions WHERE registered_model = $1 AND artifact_version_id = $2"
        )
        for _ in range(6):  # past the five custom plans: PostgreSQL settles on one generic plan
            await conn.fetch("EXECUTE link_of('classifier', gen_random_uuid())")

        async def plan() -> str:
            rows = await conn.fetch("EXPLAIN EXECUTE link_of('classifier', gen_random_uuid())")
            return "\n".join(r[0] for r in rows)

        assert "Seq Scan" in await plan()

        await event_log.append(
            [
                Envelope.new(
                    VersionLinked(registered_model="classifier", artifact_version_id=uuid4()),
                    stream=registered_model_stream("classifier"),
                    actor=ALICE,
                )
                for _ in range(3000)
            ]
        )
        await run_until_caught_up(runner, settings.database_url, event_log)

        assert await pool.fetchval("SELECT count(*) FROM model_versions") == 3000
        assert "Index Scan" in await plan()


async def test_a_finish_merges_its_summary_into_the_runs_and_one_written_before_that_still_replaces_it(
    settings: Settings, pool: asyncpg.Pool, event_log: EventLog
) -> None:
    def run_events(run_id: str) -> list[Envelope]:
        stream = f"run:acme/nature/{run_id}"
        return [
            Envelope.new(RunStarted(entity="acme", project="nature", run_id=run_id), stream=stream, actor=ALICE),
            Envelope.new(
                RunSummaryUpdated(entity="acme", project="nature", run_id=run_id, changes={"best": {"acc": 0.9}}),
                stream=stream,
                actor=ALICE,
            ),
            Envelope.new(
                RunFinished(entity="acme", project="nature", run_id=run_id, state="finished", summary={"loss": 0.1}),
                stream=stream,
                actor=ALICE,
            ),
        ]

    await event_log.append(run_events("now"))
    *before, finish = run_events("then")
    await event_log.append(before)
    written = orjson.loads(encode(finish))  # as a build before v2 wrote it
    written["version"] = 1
    del written["payload"]["summary_replaces"]
    await event_log.append_raw([LogRecord(LogPosition("", 0, 0), finish.stream.encode(), orjson.dumps(written))])

    await run_until_caught_up(ProjectionRunner(RegistryProjection(), event_log, pool), settings.database_url, event_log)

    rows = await pool.fetch("SELECT run_id, summary FROM runs ORDER BY run_id")
    assert {r["run_id"]: r["summary"] for r in rows} == {
        "now": {"best": {"acc": 0.9}, "loss": 0.1},
        "then": {"loss": 0.1},  # a rebuild gives an old run the summary it had
    }
