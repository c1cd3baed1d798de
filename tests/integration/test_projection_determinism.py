"""Replaying is deterministic: any partition interleaving Kafka may deliver, with redeliveries, builds the
same tables as applying the log in order once (real Postgres; the log here is in memory)."""

from __future__ import annotations

import math
import random

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest import approx
from support.delivery import in_order, interleaved, partitioned_by_stream
from support.history import registry_history
from support.tables import dump
from uuid_utils.compat import uuid7

from modelreg.events.artifacts import ArtifactVersionDeleted, ArtifactVersionLogged, ArtifactVersionTagged
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import MetricSeries, MetricsLogged, RunFinished, RunStarted, run_stream
from modelreg.projections.metric_chunks import CHUNK_POINTS
from modelreg.projections.metric_queries import MetricQueries
from modelreg.projections.positions import reset
from modelreg.projections.runtime import ProjectionRunner
from modelreg.services.projections_catalog import PROJECTIONS

PARTITIONS = 3
HISTORY = registry_history(300, seed=11, later_events=True)
TABLES = [table for cls in PROJECTIONS.values() for table in cls.tables]


async def build(pool: asyncpg.Pool, dsn: str, batches: list[list[LogRecord]]) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        for cls in PROJECTIONS.values():
            await reset(conn, cls.name, cls.tables)
        await conn.execute("DELETE FROM projection_positions")
    log = InMemoryEventLog(topic=batches[0][0].position.topic)
    for cls in PROJECTIONS.values():
        runner = ProjectionRunner(cls(), log, pool)
        await runner.start_positions(list(range(PARTITIONS)))
        for batch in batches:
            await runner.apply_batch(batch)
    return await dump(dsn, TABLES)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32))
async def test_any_partition_interleaving_and_redelivery_builds_the_same_tables(
    pool: asyncpg.Pool, database_url: str, seed: int
) -> None:
    partitions = partitioned_by_stream(HISTORY, PARTITIONS)
    expected = await build(pool, database_url, in_order(partitions))
    assert len(expected["audit_log"]) == len(HISTORY)

    assert await build(pool, database_url, interleaved(partitions, random.Random(seed), redelivered=0.2)) == expected


async def test_a_collections_versions_are_numbered_in_log_order_whatever_the_batches(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # A batch numbers its versions from counters read once, in memory (registry.py): v0, v1, ... in the
    # order they were logged, and the collection's counter left at the next one, in one batch or many.
    logged: dict[tuple[str, str, str], list[str]] = {}
    for event in HISTORY:
        if isinstance(event.payload, ArtifactVersionLogged):
            e = event.payload
            logged.setdefault((e.entity, e.project, e.name), []).append(str(e.artifact_version_id))
    partitions = partitioned_by_stream(HISTORY, PARTITIONS)
    for batches in (in_order(partitions), interleaved(partitions, random.Random(3), redelivered=0.2)):
        tables = await build(pool, database_url, batches)

        numbered: dict[tuple[str, str, str], dict[int, str]] = {}
        for row in tables["artifact_versions"]:
            numbered.setdefault((row[1], row[2], row[3]), {})[int(row[5])] = row[0]
        assert {key: [ids[i] for i in sorted(ids)] for key, ids in numbered.items()} == logged
        assert all(sorted(ids) == list(range(len(ids))) for ids in numbered.values())
        counters = {(r[0], r[1], r[2]): int(r[4]) for r in tables["artifact_collections"]}
        assert counters == {key: len(ids) for key, ids in logged.items()}


async def test_a_whole_batch_builds_the_same_tables_as_its_events_applied_one_by_one(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # Projections fold a batch into a few set-based statements (audit, lineage, the registry's counters);
    # a failed batch is applied again one event at a time to find the culprit: both ways must agree.
    (whole,) = in_order(partitioned_by_stream(HISTORY, PARTITIONS))
    by_batch = await build(pool, database_url, [whole])

    assert await build(pool, database_url, [[record] for record in whole]) == by_batch
    versions = [e for e in HISTORY if isinstance(e.payload, ArtifactVersionLogged)]
    assert len(by_batch["lineage_labels"]) > len(versions) > len({e.stream for e in versions})


async def test_a_version_tagged_in_the_batch_that_logs_it_keeps_its_tag_when_another_tag_opens_the_batch(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # A batch's statements are grouped into round trips, a version's own statements in order and other
    # versions' free to go before them (registry.py, _version_rows). When a batch opens with a tag of an
    # older version, tags run first in their round: a version's tag must still come after its insert.
    logged = [e for e in HISTORY if isinstance(e.payload, ArtifactVersionLogged)]
    stream = next(e.stream for e in logged if sum(other.stream == e.stream for other in logged) >= 2)
    first, second = [e for e in logged if e.stream == stream][:2]  # one stream: one partition, in this order

    def tag(logged: Envelope) -> Envelope:
        e = logged.payload
        assert isinstance(e, ArtifactVersionLogged)
        payload = ArtifactVersionTagged(
            artifact_version_id=e.artifact_version_id, entity=e.entity, project=e.project, name=e.name, tag="golden"
        )
        return Envelope.new(payload, stream=logged.stream, actor=logged.actor, occurred_at=logged.occurred_at)

    (whole,) = in_order(partitioned_by_stream([first, tag(first), second, tag(second)], PARTITIONS))
    # The second batch: the first version's tag, the second version, its tag.
    one_by_one = await build(pool, database_url, [[record] for record in whole])
    assert await build(pool, database_url, [whole[:1], whole[1:]]) == one_by_one
    assert sum("['golden']" in row for row in one_by_one["artifact_versions"]) == 2  # both tags kept


async def test_a_version_logged_with_an_alias_takes_it_from_the_collections_other_versions(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # It took it without taking it: several versions listed `best`, and once the newest was deleted with its
    # aliases, `best` was back on an older one, though the history said it was removed.
    actor = Actor(kind="user", id="ada")
    stream = "artifact:acme/den/weights"

    def logged(n: int, *aliases: str) -> Envelope:
        payload = ArtifactVersionLogged(
            artifact_version_id=uuid7(),
            entity="acme",
            project="den",
            name="weights",
            artifact_type="model",
            digest="sha256:" + f"{n:064x}",
            aliases=aliases,
        )
        return Envelope.new(payload, stream=stream, actor=actor)

    first, second, third = logged(0, "best", "v0-tested"), logged(1, "best"), logged(2)
    deletion = ArtifactVersionDeleted(
        artifact_version_id=second.payload.artifact_version_id,  # type: ignore[union-attr]
        entity="acme",
        project="den",
        name="weights",
        aliases_removed=("best",),
    )
    history = [first, second, third, Envelope.new(deletion, stream=stream, actor=actor)]
    (whole,) = in_order(partitioned_by_stream(history, PARTITIONS))
    for batches in ([whole], [[record] for record in whole], [whole[:2], whole[2:], whole[:2]]):
        await build(pool, database_url, batches)
        rows = await pool.fetch("SELECT version_index, aliases FROM artifact_versions WHERE name = 'weights'")
        assert {r["version_index"]: r["aliases"] for r in rows} == {0: ["v0-tested"], 1: [], 2: []}, batches


def metrics_history() -> list[Envelope]:
    """Two runs logging curves every way a chunk can grow: dense batches one after the other, a gap, steps
    logged again, sparse steps, and batches that fill a chunk to CHUNK_POINTS and spill into the next."""
    actor = Actor(kind="user", id="ada")
    events = []
    for run_id in ("r1", "r2"):
        events.append(
            Envelope.new(
                RunStarted(entity="acme", project="den", run_id=run_id),
                stream=run_stream("acme", "den", run_id),
                actor=actor,
            )
        )
    shapes: list[tuple[int, tuple[int, ...] | None, int]] = [
        (0, None, 10),  # dense 0..9
        (10, None, 5),  # dense and contiguous: the chunk stays dense
        (20, None, 3),  # dense after a gap: spelled out from here
        (5, None, 2),  # logged again: a new chunk
        (40, (40, 43, 47), 3),  # sparse
        (100, None, CHUNK_POINTS - 20),  # fills the chunk almost
        (CHUNK_POINTS + 80, None, 30),  # would overflow it: the next chunk
        (CHUNK_POINTS + 110, None, 4),
    ]
    for n, (first, steps, count) in enumerate(shapes):
        for run_id in ("r1", "r2"):
            series = [
                MetricSeries(key="loss", first_step=first, steps=steps, values=tuple((i + n) / 3 for i in range(count)))
            ]
            if n % 2:
                series.append(MetricSeries(key="acc", first_step=first, steps=steps, values=(0.5,) * count))
            payload = MetricsLogged(entity="acme", project="den", run_id=run_id, series=tuple(series))
            events.append(Envelope.new(payload, stream=run_stream("acme", "den", run_id), actor=actor))
    return events


async def test_metric_chunks_are_the_same_whatever_the_batches_that_carried_the_points(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # A batch folds its points into the chunks they land in, in memory (metric_batches.py); event by event,
    # one statement per event joins or starts each chunk. Chunk numbers, bounds, steps and bytes must agree.
    (whole,) = in_order(partitioned_by_stream(metrics_history(), PARTITIONS))
    by_batch = await build(pool, database_url, [whole])
    chunks = by_batch["run_metric_chunks"]
    # The history made what it was meant to: three chunks per curve, some dense (steps NULL), some not.
    assert {row[4] for row in chunks} == {"0", "1", "2"}
    assert {row[8] == "None" for row in chunks} == {True, False}

    assert await build(pool, database_url, [[record] for record in whole]) == by_batch
    assert await build(pool, database_url, [whole[i : i + 3] for i in range(0, len(whole), 3)]) == by_batch

    # Each chunk keeps its values' min, max and sum (added up event after event whatever the batches: a float sum
    # depends on its order), which a resumed run's summary is read from: what the points say.
    logged: dict[str, list[float]] = {}
    for event in metrics_history():
        if isinstance(event.payload, MetricsLogged) and event.payload.run_id == "r1":
            for series in event.payload.series:
                logged.setdefault(series.key, []).extend(series.values)
    summaries = await MetricQueries(pool).logged_summaries(("acme", "den", "r1"))
    assert summaries == [
        {
            "key": key,
            "last": last,
            "min": min(values),
            "max": max(values),
            "sum": approx(sum(values)),
            "points": len(values),
        }
        for (key, values), last in zip(sorted(logged.items()), (0.5, (3 + 7) / 3), strict=True)
    ]


async def test_a_sum_too_large_to_add_up_is_kept_as_such_whatever_the_batches(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # Two values of 1e308 add up past the largest float: in one batch Python summed them to inf, event by event
    # PostgreSQL's `+` raised and the run's stream was parked (its finish never applied).
    actor = Actor(kind="user", id="ada")
    stream = run_stream("acme", "den", "r1")

    def logged(first: int, *values: float) -> Envelope:
        series = (MetricSeries(key="x", first_step=first, steps=None, values=values),)
        return Envelope.new(
            MetricsLogged(entity="acme", project="den", run_id="r1", series=series), stream=stream, actor=actor
        )

    finished = RunFinished(entity="acme", project="den", run_id="r1", state="finished")
    history = [
        Envelope.new(RunStarted(entity="acme", project="den", run_id="r1"), stream=stream, actor=actor),
        logged(0, 1e308),
        logged(1, 1e308, -1e308),
        logged(3, 2.0),
        Envelope.new(finished, stream=stream, actor=actor),
    ]
    (whole,) = in_order(partitioned_by_stream(history, PARTITIONS))
    one_by_one = await build(pool, database_url, [[record] for record in whole])
    assert await build(pool, database_url, [whole]) == one_by_one
    assert await build(pool, database_url, [whole[:2], whole[2:]]) == one_by_one

    assert await pool.fetchval("SELECT state FROM runs WHERE run_id = 'r1'") == "finished"
    assert await pool.fetchval("SELECT sum_vals FROM run_metric_chunks WHERE run_id = 'r1'") == math.inf
    (summary,) = await MetricQueries(pool).logged_summaries(("acme", "den", "r1"))
    assert summary == {"key": "x", "last": 2.0, "min": -1e308, "max": 1e308, "sum": None, "points": 4}
