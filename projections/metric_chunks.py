"""How a run's metrics are stored: per metric, chunks of points in step order, the layout curves are read in.

A chunk holds up to CHUNK_POINTS points of one metric as two packed arrays (big-endian, so SQL can read and
write them too: int4send, float8send): steps (int32; NULL when dense, i.e. first_step, first_step + 1, ...)
and values (float64). A batch's points join the metric's last chunk when they come after it and fit, else
start the next chunk; chunks are numbered per metric in log order, so a replay builds the same chunks.

A value logged again at a step already stored lands in a later chunk (its batch does not come after the last
chunk): readers take chunks in log order and the later one wins, as a row upserted at (key, step) did.
A million points are ~250 chunks: reading a curve is reading a few rows, not a million. A chunk also keeps
its points at steps that are multiples of THUMBNAIL_EVERY (its thumbnail, a few hundred bytes): a sampled
history of a long curve reads those, 1/32 of the bytes, instead of every point. And it keeps the lowest and
highest of its values and their sum (SCHEMA_CHUNK_SUMMARIES): a run's summary over its whole history (a resumed
run's define_metric min, max and mean) is read from a few numbers per chunk, not from its points.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from modelreg.events.runs import MetricSeries

CHUNK_POINTS = 4096
THUMBNAIL_EVERY = 32

DENSE_STEPS = (
    "(SELECT string_agg(int4send(s), ''::bytea ORDER BY s) FROM generate_series({0}.first_step, {0}.last_step) s)"
)

# Replaces registry SCHEMA_V2's run_metrics (one row per point); its rows move into one chunk per metric.
# STORAGE EXTERNAL: packed floats do not compress, so PostgreSQL need not try.
SCHEMA_CHUNKS = """
CREATE TABLE run_metric_chunks (
    entity text NOT NULL,
    project text NOT NULL,
    run_id text NOT NULL,
    key text NOT NULL,
    chunk int NOT NULL,
    first_step int NOT NULL,
    last_step int NOT NULL,
    points int NOT NULL,
    steps bytea,
    vals bytea NOT NULL,
    thumb_steps bytea NOT NULL,
    thumb_vals bytea NOT NULL,
    logged_at timestamptz NOT NULL,
    PRIMARY KEY (entity, project, run_id, key, chunk)
);
ALTER TABLE run_metric_chunks ALTER COLUMN steps SET STORAGE EXTERNAL, ALTER COLUMN vals SET STORAGE EXTERNAL;
INSERT INTO run_metric_chunks
    (entity, project, run_id, key, chunk, first_step, last_step, points, steps, vals, thumb_steps, thumb_vals,
     logged_at)
SELECT entity, project, run_id, key, 0, min(step), max(step), count(*),
       string_agg(int4send(step), ''::bytea ORDER BY step), string_agg(float8send(value), ''::bytea ORDER BY step),
       coalesce(string_agg(int4send(step), ''::bytea ORDER BY step) FILTER (WHERE step % 32 = 0), ''::bytea),
       coalesce(string_agg(float8send(value), ''::bytea ORDER BY step) FILTER (WHERE step % 32 = 0), ''::bytea),
       max(logged_at)
FROM run_metrics GROUP BY entity, project, run_id, key;
DROP TABLE run_metrics;
"""

# Chunks written before it keep NULL there, grown later too (a summary of part of a chunk would be wrong): their
# values are read instead (MetricQueries.logged_summaries).
SCHEMA_CHUNK_SUMMARIES = """
ALTER TABLE run_metric_chunks ADD COLUMN min_val float8, ADD COLUMN max_val float8, ADD COLUMN sum_vals float8;
"""

# A sum one of whose terms reaches TOO_LARGE_TO_SUM is +Infinity, "too large to sum" (its mean unknown), from then
# on. PostgreSQL's float8 `+` and sum() raise when two finite numbers add up past the largest float, Python's give
# inf: below it no addition overflows, and every path adds the same terms left to right by the same rule (this CASE
# in SQL, add_to_sum in Python), so that a replay builds the same bytes however its batches fall.
TOO_LARGE_TO_SUM = 1e300
ADDED_TO_SUM = (
    "CASE WHEN {0} IS NULL OR {1} IS NULL THEN NULL"  # a chunk stored before it kept its sum keeps none
    " WHEN abs({0}) >= 1e300::float8 OR abs({1}) >= 1e300::float8 THEN 'Infinity'::float8 ELSE {0} + {1} END"
)

# One statement per batch, all its metrics at once. $4..$14: per metric key, first and last step, points,
# steps (NULL: dense), values, thumbnail steps and values, the values' min, max and sum; $15 the event's time;
# $16 CHUNK_POINTS.
METRICS_LOGGED = f"""
WITH incoming AS (
    SELECT * FROM unnest(
        $4::text[], $5::int[], $6::int[], $7::int[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[],
        $12::float8[], $13::float8[], $14::float8[]
    )
        AS i(key, first_step, last_step, points, steps, vals, thumb_steps, thumb_vals, min_val, max_val, sum_vals)
)
INSERT INTO run_metric_chunks AS c
    (entity, project, run_id, key, chunk, first_step, last_step, points, steps, vals, thumb_steps, thumb_vals,
     min_val, max_val, sum_vals, logged_at)
SELECT $1, $2, $3, i.key,
       CASE WHEN l.chunk IS NULL THEN 0
            WHEN l.points + i.points <= $16 AND i.first_step > l.last_step THEN l.chunk
            ELSE l.chunk + 1 END,
       i.first_step, i.last_step, i.points, i.steps, i.vals, i.thumb_steps, i.thumb_vals,
       i.min_val, i.max_val, i.sum_vals, $15
FROM incoming i
LEFT JOIN LATERAL (
    SELECT chunk, points, last_step FROM run_metric_chunks
    WHERE entity = $1 AND project = $2 AND run_id = $3 AND key = i.key
    ORDER BY chunk DESC LIMIT 1
) l ON true
ON CONFLICT (entity, project, run_id, key, chunk) DO UPDATE SET
    last_step = EXCLUDED.last_step,
    points = c.points + EXCLUDED.points,
    steps = CASE WHEN c.steps IS NULL AND EXCLUDED.steps IS NULL AND EXCLUDED.first_step = c.last_step + 1 THEN NULL
                 ELSE coalesce(c.steps, {DENSE_STEPS.format("c")})
                      || coalesce(EXCLUDED.steps, {DENSE_STEPS.format("EXCLUDED")})
            END,
    vals = c.vals || EXCLUDED.vals,
    thumb_steps = c.thumb_steps || EXCLUDED.thumb_steps,
    thumb_vals = c.thumb_vals || EXCLUDED.thumb_vals,
    min_val = CASE WHEN c.sum_vals IS NOT NULL THEN least(c.min_val, EXCLUDED.min_val) END,
    max_val = CASE WHEN c.sum_vals IS NOT NULL THEN greatest(c.max_val, EXCLUDED.max_val) END,
    sum_vals = {ADDED_TO_SUM.format("c.sum_vals", "EXCLUDED.sum_vals")},
    logged_at = EXCLUDED.logged_at
"""

_SWAP = sys.byteorder == "little"


def pack(code: str, numbers: Sequence[float] | Sequence[int]) -> bytes:
    packed = array(code, numbers)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def unpack(code: str, data: bytes) -> array:
    numbers = array(code)
    numbers.frombytes(data)
    if _SWAP:
        numbers.byteswap()
    return numbers


def packed_series(series: Sequence[MetricSeries]) -> tuple[list, ...]:
    """A batch's series as the column arrays METRICS_LOGGED takes ($4..$14)."""
    thumbnails = [thumbnail(s) for s in series]
    summaries = [summary(s.values) for s in series]
    return (
        [s.key for s in series],
        [s.first_step for s in series],
        [s.last_step for s in series],
        [len(s.values) for s in series],
        [None if s.steps is None else pack("i", s.steps) for s in series],
        [pack("d", s.values) for s in series],
        [pack("i", steps) for steps, _ in thumbnails],
        [pack("d", values) for _, values in thumbnails],
        *(list(column) for column in zip(*summaries, strict=True)),
    )


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """The values' min, max and sum. `+ 0.0` makes -0.0 0.0: least() and min() may keep either of two equal
    zeros, and a replay must build the same bytes however its batches fall."""
    return min(values) + 0.0, max(values) + 0.0, summed(values)


def summed(terms: Iterable[float]) -> float:
    """The terms added left to right (not sum(): Python 3.12's compensates, 3.11's does not), +inf once a term or
    the total reaches TOO_LARGE_TO_SUM. In C (reduce), not a call per term: every metric point passes here."""
    terms = terms if isinstance(terms, Sequence) else list(terms)
    if not terms:
        return 0.0
    if max(terms) >= TOO_LARGE_TO_SUM or min(terms) <= -TOO_LARGE_TO_SUM:
        return math.inf
    total = functools.reduce(operator.add, terms, 0.0)
    return math.inf if abs(total) >= TOO_LARGE_TO_SUM else total


def add_to_sum(total: float, term: float) -> float:
    """`total + term` as ADDED_TO_SUM adds them in SQL: +inf once either reaches TOO_LARGE_TO_SUM."""
    if abs(total) >= TOO_LARGE_TO_SUM or abs(term) >= TOO_LARGE_TO_SUM:
        return math.inf
    return total + term


def thumbnail(series: MetricSeries) -> tuple[Sequence[int], Sequence[float]]:
    """The points at steps that are multiples of THUMBNAIL_EVERY (by step, so that batches concatenate)."""
    if series.steps is None:
        offset = -series.first_step % THUMBNAIL_EVERY
        return range(series.first_step + offset, series.last_step + 1, THUMBNAIL_EVERY), series.values[
            offset::THUMBNAIL_EVERY
        ]
    kept = [(s, v) for s, v in zip(series.steps, series.values, strict=True) if s % THUMBNAIL_EVERY == 0]
    return [s for s, _ in kept], [v for _, v in kept]


@dataclass(frozen=True)
class Segment:
    """Points in strictly increasing step order; `steps` None: dense from `first_step`."""

    first_step: int
    last_step: int
    steps: array | None
    values: array

    def step_at(self, index: int) -> int:
        return self.first_step + index if self.steps is None else self.steps[index]

    def index_after(self, step: int) -> int:
        """The index of the first point with a step above `step`."""
        if self.steps is None:
            return min(max(step + 1 - self.first_step, 0), len(self.values))
        return bisect_right(self.steps, step)

    def index_from(self, step: int) -> int:
        """The index of the first point with a step at or above `step`."""
        if self.steps is None:
            return min(max(step - self.first_step, 0), len(self.values))
        return bisect_left(self.steps, step)


class Curve:
    """One metric's points in step order, built from its chunks in log order (a later value wins a step)."""

    @classmethod
    def of_thumbnails(cls, thumbnails: Sequence[tuple[bytes, bytes]]) -> Curve:
        """The curve of the chunks' thumbnails ((steps, vals) as stored, in chunk order)."""
        chunks = []
        for steps, vals in thumbnails:
            if steps:
                unpacked = unpack("i", steps)
                chunks.append((unpacked[0], unpacked[-1], steps, vals))
        return cls(chunks)

    def __init__(self, chunks: Sequence[tuple[int, int, bytes | None, bytes]]) -> None:
        """`chunks`: (first_step, last_step, steps, vals) as stored, in chunk (log) order."""
        segments = [
            Segment(first, last, None if steps is None else unpack("i", steps), unpack("d", vals))
            for first, last, steps, vals in chunks
        ]
        if any(later.first_step <= earlier.last_step for earlier, later in zip(segments, segments[1:], strict=False)):
            segments = [_merged(segments)]  # a step was logged again, or batches came out of step order
        self.segments = segments
        self._starts: list[int] = []  # the curve index of each segment's first point
        total = 0
        for segment in segments:
            self._starts.append(total)
            total += len(segment.values)
        self._length = total

    def __len__(self) -> int:
        return self._length

    def point(self, index: int) -> tuple[int, float]:
        where = bisect_right(self._starts, index) - 1
        segment = self.segments[where]
        offset = index - self._starts[where]
        return segment.step_at(offset), segment.values[offset]

    def sample(self, samples: int) -> tuple[list[int], list[float]]:
        """At most `samples` points spread evenly over the curve, its first and last point included."""
        indexes = spread(self._length, samples)
        steps: list[int] = []
        values: list[float] = []
        taken = 0
        for start, segment in zip(self._starts, self.segments, strict=True):  # one pass, segment by segment
            end = start + len(segment.values)
            first = taken
            while taken < len(indexes) and indexes[taken] < end:
                taken += 1
            offsets = [i - start for i in indexes[first:taken]]
            if segment.steps is None:
                steps += [segment.first_step + o for o in offsets]
            else:
                steps += [segment.steps[o] for o in offsets]
            values += [segment.values[o] for o in offsets]
        return steps, values

    def steps_between(self, after: int, through: int) -> list[Sequence[int]]:
        """The steps with after < step <= through, a range or an array a segment (no object per point)."""
        found: list[Sequence[int]] = []
        for segment in self.segments:
            if segment.last_step <= after or segment.first_step > through:
                continue
            start, end = segment.index_after(after), segment.index_from(through + 1)
            if segment.steps is None:
                found.append(range(segment.first_step + start, segment.first_step + end))
            else:
                found.append(segment.steps[start:end])
        return found

    def values_at(self, steps: Sequence[int]) -> list[float | None]:
        """The values at `steps` (increasing), None where the curve has no point; one pass over the segments."""
        found: list[float | None] = [None] * len(steps)
        i = 0
        for segment in self.segments:
            i = bisect_left(steps, segment.first_step, i)
            end = bisect_right(steps, segment.last_step, i)
            for j in range(i, end):
                step = steps[j]
                if segment.steps is None:
                    found[j] = segment.values[step - segment.first_step]
                else:
                    index = bisect_left(segment.steps, step)
                    if index < len(segment.steps) and segment.steps[index] == step:
                        found[j] = segment.values[index]
            i = end
        return found

    def between(self, after: int, through: int) -> Iterator[tuple[int, float]]:
        """The points with after < step <= through, in step order."""
        for segment in self.segments:
            if segment.last_step <= after or segment.first_step > through:
                continue
            start, end = segment.index_after(after), segment.index_from(through + 1)
            for offset in range(start, end):
                yield segment.step_at(offset), segment.values[offset]


def spread(n: int, samples: int) -> Sequence[int]:
    """At most `samples` indexes of n spread evenly, the last one (and the first, for two or more) included."""
    if n <= samples:
        return range(n)
    if samples == 1:
        return [n - 1]
    return [round(i * (n - 1) / (samples - 1)) for i in range(samples)]


def _merged(segments: list[Segment]) -> Segment:
    latest: dict[int, float] = {}
    for segment in segments:
        for offset, value in enumerate(segment.values):
            latest[segment.step_at(offset)] = value
    steps = sorted(latest)
    return Segment(steps[0], steps[-1], array("i", steps), array("d", (latest[s] for s in steps)))
