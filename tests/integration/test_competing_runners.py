"""Two runners of one projection on the same partitions (a rebalance, a rebuild beside the live projector):
whoever wins each batch, every event is applied once, in its stream's order. The log here is in memory
(driven step by step); Postgres is real."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.registry import AliasAdded, AliasRemoved, registered_model_stream
from modelreg.events.runs import RunStarted, run_stream
from modelreg.projections.projection import Statement, handles
from modelreg.projections.registry import RegistryProjection
from modelreg.projections.runtime import ProjectionRunner

ALICE = Actor(kind="user", id="alice")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def runs_in_partition(partition: int, count: int, partitions: int = 2) -> list[Envelope]:
    found, i = [], 0
    while len(found) < count:
        stream = run_stream("acme", "p", f"r{i}")
        if zlib.crc32(stream.encode()) % partitions == partition:
            found.append(
                Envelope.new(
                    RunStarted(entity="acme", project="p", run_id=f"r{i}"), stream=stream, actor=ALICE, occurred_at=T0
                )
            )
        i += 1
    return found


async def test_a_batch_dropped_because_one_partition_moved_loses_nothing_of_the_others(pool: asyncpg.Pool) -> None:
    log = InMemoryEventLog(partitions=2)
    p0, p1 = runs_in_partition(0, 3), runs_in_partition(1, 4)
    await log.append(p0 + p1[:3])
    live, rebuild = ProjectionRunner(RegistryProjection(), log, pool), ProjectionRunner(RegistryProjection(), log, pool)
    await live.open()
    await rebuild.open()

    await rebuild.step(2)  # partition 0, first two
    await live.step(6)  # both partitions: partition 0 moved under it, so the whole batch is dropped
    await live.step(6)
    await rebuild.step(6)
    await log.append(p1[3:])
    for _ in range(3):
        await live.step(6)
        await rebuild.step(6)

    runs = await pool.fetch("SELECT run_id FROM runs")
    assert sorted(r["run_id"] for r in runs) == sorted(e.payload.run_id for e in p0 + p1)
    positions = await pool.fetch("SELECT partition, next_offset FROM projection_positions ORDER BY partition")
    assert [tuple(r) for r in positions] == [(0, 3), (1, 4)]


class AliasesFailingUntilFixed(RegistryProjection):
    broken = True

    @handles(AliasAdded)
    def alias_added(self, e: AliasAdded, envelope: Envelope) -> list[Statement]:
        if self.broken:
            return [Statement("SELECT 1 / 0", ())]
        return super().alias_added(e, envelope)


async def test_a_stream_parked_by_one_runner_is_parked_for_the_others_too(pool: asyncpg.Pool) -> None:
    log = InMemoryEventLog(partitions=1)
    stream, version = registered_model_stream("m"), uuid4()
    a, b = AliasesFailingUntilFixed(), AliasesFailingUntilFixed()
    runner_a, runner_b = ProjectionRunner(a, log, pool), ProjectionRunner(b, log, pool)
    await runner_a.open()
    await log.append(
        [
            Envelope.new(
                AliasAdded(registered_model="m", artifact_version_id=version, alias="prod"),
                stream=stream,
                actor=ALICE,
                occurred_at=T0,
            )
        ]
    )
    await runner_a.step()  # the add fails: stream parked
    a.broken = b.broken = False

    # The partition moves to runner b (a rebalance), which knows nothing of a's memory.
    await log.append(
        [
            Envelope.new(
                AliasRemoved(registered_model="m", artifact_version_id=version, alias="prod"),
                stream=stream,
                actor=ALICE,
                occurred_at=T0,
            )
        ]
    )
    await runner_b.open()
    while await runner_b.step():
        pass
    assert await pool.fetchval("SELECT count(*) FROM parked_events WHERE stream = $1", stream) == 2

    assert await runner_a.retry_parked() == 1
    assert await pool.fetch("SELECT alias FROM model_aliases") == []  # added, then removed: in that order
    assert await pool.fetchval("SELECT count(*) FROM parked_streams") == 0
