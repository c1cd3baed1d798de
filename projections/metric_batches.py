"""A batch's metric points folded into the chunks they land in, each chunk written once.

Per event, METRICS_LOGGED (metric_chunks.py) looks up each metric's last chunk and joins it or starts the next:
one executemany row per event, each a lookup and an upsert that rewrites the chunk. A batch holding many
events of a run instead reads each of its metrics' last chunk once (LAST_CHUNKS), applies the same rule in
memory, event after event, and writes the chunks it touched in two statements: the new ones in one INSERT,
the stored ones it grew in one UPDATE (their values' min, max and sum set whole, added up event after event as
the per-event statement adds them: a float sum depends on its order). The rows are the ones the per-event path
builds, byte for byte: a batch that fails is applied again event by event, and a replay in other batches must
build the same tables (tests/integration/test_projection_determinism.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelreg.events.runs import MetricSeries, MetricsLogged
from modelreg.projections.metric_chunks import CHUNK_POINTS, DENSE_STEPS, add_to_sum, pack, summary, thumbnail

Metric = tuple[str, str, str, str]  # entity, project, run id, key

LAST_CHUNKS = """
SELECT DISTINCT ON (c.entity, c.project, c.run_id, c.key)
       c.entity, c.project, c.run_id, c.key, c.chunk, c.points, c.last_step, c.steps IS NULL AS dense,
       c.min_val, c.max_val, c.sum_vals
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS m(entity, project, run_id, key)
JOIN run_metric_chunks c USING (entity, project, run_id, key)
ORDER BY c.entity, c.project, c.run_id, c.key, c.chunk DESC
"""

NEW_CHUNKS = """
INSERT INTO run_metric_chunks
    (entity, project, run_id, key, chunk, first_step, last_step, points, steps, vals, thumb_steps, thumb_vals,
     min_val, max_val, sum_vals, logged_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[],
                     $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[], $13::float8[], $14::float8[],
                     $15::float8[], $16::timestamptz[])
"""

# `dense`: the chunk's steps stay NULL; else its stored steps (spelled out when they were dense) and the
# batch's, which are spelled out, as the per-event statement does when a chunk stops being dense.
GROWN_CHUNKS = f"""
UPDATE run_metric_chunks c SET
    last_step = g.last_step,
    points = c.points + g.points,
    steps = CASE WHEN g.dense THEN NULL ELSE coalesce(c.steps, {DENSE_STEPS.format("c")}) || g.steps END,
    vals = c.vals || g.vals,
    thumb_steps = c.thumb_steps || g.thumb_steps,
    thumb_vals = c.thumb_vals || g.thumb_vals,
    min_val = g.min_val,
    max_val = g.max_val,
    sum_vals = g.sum_vals,
    logged_at = g.logged_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::bool[],
            $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[], $13::float8[], $14::float8[], $15::float8[],
            $16::timestamptz[])
    AS g(entity, project, run_id, key, chunk, last_step, points, dense, steps, vals, thumb_steps, thumb_vals,
         min_val, max_val, sum_vals, logged_at)
WHERE c.entity = g.entity AND c.project = g.project AND c.run_id = g.run_id AND c.key = g.key AND c.chunk = g.chunk
"""


@dataclass
class Chunk:
    """A chunk as the batch leaves it: what it held before (`stored`: it was in the table) and what it gained."""

    chunk: int
    points: int
    last_step: int
    dense: bool  # its steps are NULL (first_step, first_step + 1, ...)
    stored: bool
    first_step: int = 0
    # Its values' min, max and sum, as it is left; None: stored before chunks kept them (SCHEMA_CHUNK_SUMMARIES).
    min_val: float | None = None
    max_val: float | None = None
    sum_vals: float | None = None
    logged_at: datetime | None = None
    added: int = 0  # points added by this batch
    steps: list[bytes] = field(default_factory=list)  # the batch's steps, spelled out
    vals: list[bytes] = field(default_factory=list)
    thumb_steps: list[bytes] = field(default_factory=list)
    thumb_vals: list[bytes] = field(default_factory=list)

    def summarize(self, low: float, high: float, total: float) -> None:
        """Take in a series' min, max and sum, as METRICS_LOGGED's upsert does."""
        if self.min_val is None or self.max_val is None or self.sum_vals is None:
            return
        self.min_val, self.max_val, self.sum_vals = (
            min(self.min_val, low),
            max(self.max_val, high),
            add_to_sum(self.sum_vals, total),
        )


def metrics_of(events: Sequence[MetricsLogged]) -> list[Metric]:
    return list(dict.fromkeys((e.entity, e.project, e.run_id, s.key) for e in events for s in e.series))


def last_chunks(rows: Sequence[Any]) -> Folded:
    """LAST_CHUNKS's rows: the chunks a batch starts from."""
    return Folded(
        {
            (r["entity"], r["project"], r["run_id"], r["key"]): Chunk(
                chunk=r["chunk"],
                points=r["points"],
                last_step=r["last_step"],
                dense=r["dense"],
                stored=True,
                min_val=r["min_val"],
                max_val=r["max_val"],
                sum_vals=r["sum_vals"],
            )
            for r in rows
        }
    )


class Folded:
    """A batch's metrics: each one's last chunk, and every chunk the batch touched, in the order touched."""

    def __init__(self, last: dict[Metric, Chunk]) -> None:
        self.last = last
        self.touched: list[tuple[Metric, Chunk]] = list(last.items())

    def add(self, event: MetricsLogged, logged_at: datetime) -> None:
        """Add an event's series to the chunks they land in, by METRICS_LOGGED's rule."""
        for series in event.series:
            self._add(event, series, logged_at)

    def _add(self, event: MetricsLogged, series: MetricSeries, logged_at: datetime) -> None:
        metric = (event.entity, event.project, event.run_id, series.key)
        current = self.last.get(metric)
        count = len(series.values)
        low, high, total = summary(series.values)
        if current is not None and current.points + count <= CHUNK_POINTS and series.first_step > current.last_step:
            current.dense = current.dense and series.steps is None and series.first_step == current.last_step + 1
            current.summarize(low, high, total)
        else:
            number = 0 if current is None else current.chunk + 1
            current = Chunk(
                number,
                0,
                series.last_step,
                dense=series.steps is None,
                stored=False,
                first_step=series.first_step,
                min_val=low,
                max_val=high,
                sum_vals=total,
            )
            self.last[metric] = current
            self.touched.append((metric, current))
        current.points += count
        current.added += count
        current.last_step = series.last_step
        current.logged_at = logged_at
        current.steps.append(pack("i", series.step_list()))
        current.vals.append(pack("d", series.values))
        thumb_steps, thumb_vals = thumbnail(series)
        current.thumb_steps.append(pack("i", thumb_steps))
        current.thumb_vals.append(pack("d", thumb_vals))

    def statements(self) -> list[tuple[str, tuple[list[Any], ...]]]:
        """NEW_CHUNKS and GROWN_CHUNKS with their arrays: every chunk the batch started or grew."""
        new: tuple[list[Any], ...] = tuple([] for _ in range(16))
        grown: tuple[list[Any], ...] = tuple([] for _ in range(16))
        for metric, c in self.touched:
            if not c.added:
                continue
            steps, vals = b"".join(c.steps), b"".join(c.vals)
            thumbs = (b"".join(c.thumb_steps), b"".join(c.thumb_vals))
            summarized = (c.min_val, c.max_val, c.sum_vals)
            row: tuple[Any, ...]
            if c.stored:
                row = (*metric, c.chunk, c.last_step, c.added, c.dense, steps, vals, *thumbs, *summarized, c.logged_at)
                columns = grown
            else:
                head = (*metric, c.chunk, c.first_step, c.last_step, c.points, None if c.dense else steps, vals)
                row = (*head, *thumbs, *summarized, c.logged_at)
                columns = new
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        return [(sql, columns) for sql, columns in ((NEW_CHUNKS, new), (GROWN_CHUNKS, grown)) if columns[0]]
