"""A registry written with one row per point (run_metrics) keeps every point when it moves to chunks; chunks written
before they kept their values' min, max and sum are summarized from their points."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from pytest import approx

from modelreg.errors import InvalidInput
from modelreg.events.runs import MetricSeries
from modelreg.projections.metric_chunks import CHUNK_POINTS, METRICS_LOGGED, packed_series
from modelreg.projections.metric_queries import MetricQueries
from modelreg.projections.migrations import migrate
from modelreg.services.infra.database import create_pool
from modelreg.services.projections_catalog import all_migrations


async def test_points_of_the_old_table_are_read_back_from_chunks_after_the_migration(database_url: str) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        chunks = [m for m in all_migrations() if m.component == "registry" and "run_metric_chunks" in m.sql]
        await migrate(pool, [m for m in all_migrations() if m not in chunks])
        await pool.executemany(
            "INSERT INTO run_metrics (entity, project, run_id, key, step, value, logged_at) "
            "VALUES ('acme', 'nature', 'r1', $1, $2, $3, now())",
            [("loss", step, 1 / (step + 1)) for step in range(100)] + [("val_loss", step, 0.5) for step in (9, 99)],
        )
        await migrate(pool, all_migrations())

        reads = MetricQueries(pool)
        points = await reads.points(("acme", "nature", "r1"), None, max_points=1000)
        assert [(p["key"], p["step"]) for p in points] == [("loss", s) for s in range(100)] + [
            ("val_loss", 9),
            ("val_loss", 99),
        ]
        assert [p["value"] for p in points if p["key"] == "loss"] == [1 / (s + 1) for s in range(100)]
        whole = await reads.history(("acme", "nature", "r1"), ["loss"], 100)
        assert whole[0]["steps"] == list(range(100)) and whole[0]["points"] == 100
        # From every 32nd step (0, 32, 64, 96), between the curve's real first and last points.
        thumbnail = await reads.history(("acme", "nature", "r1"), ["loss"], 3)
        assert thumbnail == [{"key": "loss", "steps": [0, 64, 99], "values": [1.0, 1 / 65, 1 / 100], "points": 100}]
        assert not await pool.fetchval("SELECT to_regclass('run_metrics') IS NOT NULL")

        # Chunks of an older build keep no min, max or sum of their values, grown later neither: a resumed run's
        # summary reads those from their points; a chunk written since, from its own.
        grown = [
            MetricSeries(key="loss", first_step=100, values=(5.0,)),
            MetricSeries(key="acc", values=(0.25, 0.75), first_step=0),
        ]
        await pool.execute(
            METRICS_LOGGED, "acme", "nature", "r1", *packed_series(grown), datetime.now(UTC), CHUNK_POINTS
        )
        assert await pool.fetchval("SELECT count(*) FROM run_metric_chunks WHERE sum_vals IS NULL") == 2
        loss = [1 / (s + 1) for s in range(100)] + [5.0]
        assert await reads.logged_summaries(("acme", "nature", "r1")) == [
            {"key": "acc", "last": 0.75, "min": 0.25, "max": 0.75, "sum": 1.0, "points": 2},
            {"key": "loss", "last": 5.0, "min": 1 / 100, "max": 5.0, "sum": approx(sum(loss)), "points": 101},
            {"key": "val_loss", "last": 0.5, "min": 0.5, "max": 0.5, "sum": 1.0, "points": 2},
        ]
        # Those points are a request's to read (a long run's are gigabytes): told before they are read, and refused
        # past a bound, as listing every point is.
        counted: list[int] = []
        await reads.logged_summaries(("acme", "nature", "r1"), counted=counted.append)
        assert counted == [101 + 2]
        with pytest.raises(InvalidInput, match="would read 103 points of chunks stored before"):
            await reads.logged_summaries(("acme", "nature", "r1"), max_points=102, counted=counted.append)
        assert counted == [103]
        # One grown with a value too large to add up keeps no sum still (not "too large": the rest is unknown).
        huge = [MetricSeries(key="loss", first_step=101, values=(1e305,))]
        await pool.execute(
            METRICS_LOGGED, "acme", "nature", "r1", *packed_series(huge), datetime.now(UTC), CHUNK_POINTS
        )
        assert await pool.fetchval("SELECT count(*) FROM run_metric_chunks WHERE sum_vals IS NULL") == 2
    finally:
        await pool.close()


async def test_listing_every_point_of_a_run_past_the_bound_is_refused_before_reading(database_url: str) -> None:
    pool: asyncpg.Pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool, all_migrations())
        await pool.execute(
            "INSERT INTO run_metric_chunks (entity, project, run_id, key, chunk, first_step, last_step, points, vals, "
            "thumb_steps, thumb_vals, logged_at) VALUES ('acme', 'nature', 'big', 'loss', 0, 0, 999, 1000, "
            "'\\x'::bytea, '\\x'::bytea, '\\x'::bytea, now())"
        )
        with pytest.raises(InvalidInput, match="1,000 points, over 999 for one list: read them with history"):
            await MetricQueries(pool).points(("acme", "nature", "big"), None, max_points=999)
    finally:
        await pool.close()
