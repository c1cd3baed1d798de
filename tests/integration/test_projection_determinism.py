"""Replaying is deterministic: any partition interleaving Kafka may deliver, with redeliveries, builds the
same tables as applying the log in order once (real Postgres; the log here is in memory)."""

from __future__ import annotations

import random

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.delivery import in_order, interleaved, partitioned_by_stream
from support.history import registry_history
from support.tables import dump

from modelreg.events.log import LogRecord
from modelreg.events.memory_log import InMemoryEventLog
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
