"""Reads of a run's metric history (the chunks of projections/metric_chunks.py). Never writes.

`history` samples whole curves (a chart), each on its own; `sampled_steps` samples the run's steps, chosen once
for all the metrics (rows by step: W&B's `run.history()`); `scan_page` pages through every point in step order, one row
per step; `points` lists every point of a metric (small runs, the run page of older clients); `last_values` and
`logged_summaries` say what a summary streamed while the run logged would hold, from a few numbers per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from modelreg.errors import InvalidInput
from modelreg.projections.metric_chunks import Curve, spread, summary, summed, unpack

_CHUNKS = """
SELECT key, first_step, last_step, steps, vals FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3 AND ($4::text[] IS NULL OR key = ANY($4))
  AND last_step > $5 AND first_step <= $6
ORDER BY key, chunk
"""

_THUMBNAILS = """
SELECT key, points, thumb_steps, thumb_vals FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3 AND ($4::text[] IS NULL OR key = ANY($4))
ORDER BY key, chunk
"""

# Each metric's first and last chunks (by step): a curve sampled from its thumbnails, which keep every
# THUMBNAIL_EVERY-th step, starts and ends at its real first and last points. Several chunks where a step was
# logged again: Curve keeps the later value.
_ENDS = """
SELECT c.key, c.first_step, c.last_step, c.steps, c.vals
FROM run_metric_chunks c
JOIN (SELECT key, min(first_step) AS first_step, max(last_step) AS last_step FROM run_metric_chunks
      WHERE entity = $1 AND project = $2 AND run_id = $3 AND key = ANY($4) GROUP BY key) AS ends
  ON ends.key = c.key AND (c.first_step = ends.first_step OR c.last_step = ends.last_step)
WHERE c.entity = $1 AND c.project = $2 AND c.run_id = $3 AND c.key = ANY($4)
ORDER BY c.key, c.chunk
"""

# Each metric's chunk holding its last step (the later chunk when a step was logged again), in name order.
_LAST_CHUNKS = """
SELECT DISTINCT ON (key) key, first_step, last_step, steps, vals FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3
ORDER BY key, last_step DESC, chunk DESC
LIMIT $4
"""

# Each metric's min, max, chunk sums (in chunk order, added up in Python as the projection adds them: PostgreSQL's
# sum() raises where two finite sums overflow) and count of values over its chunks' own (none of its points read),
# in name order as _LAST_CHUNKS (the same metrics under the same LIMIT). `unsummed_points`: in chunks written before
# they kept them (NULL in `sums`), which are read point by point.
_SUMMARIES = """
SELECT key, min(min_val) AS min_val, max(max_val) AS max_val, array_agg(sum_vals ORDER BY chunk) AS sums,
       sum(points) AS points, coalesce(sum(points) FILTER (WHERE sum_vals IS NULL), 0) AS unsummed_points
FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3
GROUP BY key
ORDER BY key
LIMIT $4
"""

_UNSUMMED = """
SELECT key, vals FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3 AND key = ANY($4) AND sum_vals IS NULL
ORDER BY key, chunk
"""

_LOGGED = """
SELECT sum(points) FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3 AND ($4::text[] IS NULL OR key = ANY($4))
"""

_OUTLINE = """
SELECT key, first_step, last_step, points, steps IS NULL AS dense FROM run_metric_chunks
WHERE entity = $1 AND project = $2 AND run_id = $3 AND ($4::text[] IS NULL OR key = ANY($4)) AND last_step > $5
ORDER BY key, first_step
"""

NO_STEP = -1
LAST_STEP = 2**31 - 1
# The metrics a summary read from the history holds at most (a run marked crashed, a resumed run): a few numbers each.
SUMMARIZED_METRICS = 1_000
# The points of chunks stored before they kept their summaries that such a summary reads at most.
SUMMARIZED_POINTS = 1_000_000


@dataclass(frozen=True)
class HistoryPage:
    rows: list[dict[str, Any]]  # {"step": ..., "values": {key: value}}, in step order
    last_step: int | None
    has_more: bool


class MetricQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def curves(
        self, run: tuple[str, str, str], keys: Sequence[str] | None, after: int = NO_STEP, through: int = LAST_STEP
    ) -> dict[str, Curve]:
        """The metrics' curves (all of the run's metrics when `keys` is None), by key, with the chunks that
        hold steps in (after, through]."""
        rows = await self.pool.fetch(_CHUNKS, *run, None if keys is None else list(keys), after, through)
        chunks: dict[str, list[tuple[int, int, bytes | None, bytes]]] = {}
        for row in rows:
            chunks.setdefault(row["key"], []).append((row["first_step"], row["last_step"], row["steps"], row["vals"]))
        return {key: Curve(found) for key, found in chunks.items()}

    async def history(
        self, run: tuple[str, str, str], keys: Sequence[str] | None, samples: int
    ) -> list[dict[str, Any]]:
        """Per metric, at most `samples` points spread evenly over its whole curve, by key. A long curve is
        sampled from its thumbnails (every THUMBNAIL_EVERY-th step) when they have enough points."""
        rows = await self.pool.fetch(_THUMBNAILS, *run, None if keys is None else list(keys))
        logged: dict[str, int] = {}
        thumbnails: dict[str, list[tuple[bytes, bytes]]] = {}
        for row in rows:
            logged[row["key"]] = logged.get(row["key"], 0) + row["points"]
            thumbnails.setdefault(row["key"], []).append((row["thumb_steps"], row["thumb_vals"]))
        curves = {key: Curve.of_thumbnails(found) for key, found in thumbnails.items()}
        short = [key for key, curve in curves.items() if len(curve) < samples]
        if short:
            curves.update(await self.curves(run, short))
            logged.update({key: len(curves[key]) for key in short})
        ends = await self._ends(run, [key for key in curves if key not in short])
        found = []
        for key in sorted(curves) if keys is None else [k for k in dict.fromkeys(keys) if k in curves]:
            steps, values = curves[key].sample(samples)
            if key in ends and steps:
                (first_step, first), (last_step, last) = ends[key]
                if len(steps) > 1:
                    steps[0], values[0] = first_step, first
                steps[-1], values[-1] = last_step, last
            found.append({"key": key, "steps": steps, "values": values, "points": logged[key]})
        return found

    async def sampled_steps(
        self, run: tuple[str, str, str], keys: Sequence[str] | None, samples: int
    ) -> list[dict[str, Any]]:
        """`history`'s curves at steps chosen once for all the metrics: at most `samples` steps spread evenly over
        the run's steps (with `keys`: over the steps at which every one of them has a point, so every curve has
        the same steps), the first and last of those steps included; each curve has the chosen steps where it
        has a point. Rows by step (W&B's `run.history()`) hold every value logged at their step. Chosen among
        the thumbnails' steps (every THUMBNAIL_EVERY-th) when they hold enough, the real first and last step then
        read from the chunks around them; else among every point."""
        wanted = None if keys is None else list(dict.fromkeys(keys))
        every = wanted is not None
        logged: dict[str, int] = {}
        thumbnails: dict[str, list[tuple[bytes, bytes]]] = {}
        for row in await self.pool.fetch(_THUMBNAILS, *run, wanted):
            logged[row["key"]] = logged.get(row["key"], 0) + row["points"]
            thumbnails.setdefault(row["key"], []).append((row["thumb_steps"], row["thumb_vals"]))
        order = wanted if wanted is not None else sorted(thumbnails)
        if wanted is not None and len(thumbnails) < len(wanted):
            return [{"key": key, "steps": [], "values": [], "points": logged[key]} for key in order if key in logged]
        curves = {key: Curve.of_thumbnails(found) for key, found in thumbnails.items()}
        steps = _steps_of(curves.values(), every)
        if len(steps) < samples:  # too few among the thumbnails: every point
            curves = await self.curves(run, wanted)
            logged = {key: len(curve) for key, curve in curves.items()}
            steps = _steps_of(curves.values(), every)
            return _curves_at([steps[i] for i in spread(len(steps), samples)], order, curves, logged)
        chosen = [steps[i] for i in spread(len(steps), samples)]
        ends = []
        if len(chosen) > 1:  # the real first step, at or before the thumbnails' first
            head = await self.curves(run, wanted, NO_STEP, steps[0])
            ends.append((0, _steps_of(head.values(), every, NO_STEP, steps[0])[0], head))
        tail = await self.curves(run, wanted, steps[-1] - 1, LAST_STEP)
        ends.append((len(chosen) - 1, _steps_of(tail.values(), every, steps[-1] - 1, LAST_STEP)[-1], tail))
        for index, step, _ in ends:
            chosen[index] = step
        return _curves_at(chosen, order, curves, logged, ends)

    async def _ends(
        self, run: tuple[str, str, str], keys: list[str]
    ) -> dict[str, tuple[tuple[int, float], tuple[int, float]]]:
        """Each metric's first and last point, by key."""
        if not keys:
            return {}
        chunks: dict[str, list[tuple[int, int, bytes | None, bytes]]] = {}
        for row in await self.pool.fetch(_ENDS, *run, keys):
            chunks.setdefault(row["key"], []).append((row["first_step"], row["last_step"], row["steps"], row["vals"]))
        ends = {}
        for key, found in chunks.items():
            curve = Curve(found)
            ends[key] = (curve.point(0), curve.point(len(curve) - 1))
        return ends

    async def scan_page(
        self, run: tuple[str, str, str], keys: Sequence[str] | None, after: int, rows: int, max_points: int
    ) -> HistoryPage:
        """The first `rows` steps after `after` at which any of the metrics has a point; refused (before any
        point is read) when `rows` times the metrics could exceed `max_points`."""
        outline = await self.pool.fetch(_OUTLINE, *run, None if keys is None else list(keys), after)
        if not outline:
            return HistoryPage([], None, False)
        metrics = len({r["key"] for r in outline})
        if rows * metrics > max_points:
            raise InvalidInput(
                f"{metrics} metrics x {rows} steps could be over {max_points:,} points: ask for fewer (first, keys)"
            )
        through = _page_bound(outline, after, rows)
        curves = await self.curves(run, keys, after, through)
        by_step: dict[int, dict[str, float]] = {}
        for key in sorted(curves):
            for step, value in curves[key].between(after, through):
                by_step.setdefault(step, {})[key] = value
        steps = sorted(by_step)[:rows]
        last = steps[-1] if steps else None
        has_more = last is not None and max(r["last_step"] for r in outline) > last
        return HistoryPage([{"step": s, "values": by_step[s]} for s in steps], last, has_more)

    async def last_values(self, run: tuple[str, str, str], max_keys: int = SUMMARIZED_METRICS) -> dict[str, float]:
        """Each metric's value at its last step (W&B's summary of a run that never said otherwise), for at most
        `max_keys` metrics, by name."""
        return _last_values(await self.pool.fetch(_LAST_CHUNKS, *run, max_keys))

    async def logged_summaries(
        self,
        run: tuple[str, str, str],
        max_keys: int = SUMMARIZED_METRICS,
        max_points: int = SUMMARIZED_POINTS,
        counted: Callable[[int], None] = lambda points: None,
    ) -> list[dict[str, Any]]:
        """Each metric's last value and the min, max, sum and count (`points`) of its values over the whole history,
        for at most `max_keys` metrics, in name order: what define_metric's summaries of a resumed run go on from.
        A value logged again at a step counts beside the one it replaced, as in a summary kept while logging. A sum
        too large to add up (metric_chunks.TOO_LARGE_TO_SUM) is None. Chunks written before they kept a summary are
        read point by point: refused past `max_points`, and `counted` is told how many before they are read."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(_SUMMARIES, *run, max_keys)
            last = _last_values(await conn.fetch(_LAST_CHUNKS, *run, max_keys))  # of the same metrics: one snapshot
            unsummed = [row["key"] for row in rows if row["unsummed_points"]]
            chunks = []
            if unsummed:
                to_read = sum(row["unsummed_points"] for row in rows)
                if to_read > max_points:
                    raise InvalidInput(
                        f"this run's history summary would read {to_read:,} points of chunks stored before chunks "
                        f"kept their summaries, over {max_points:,}"
                    )
                counted(to_read)
                chunks = await conn.fetch(_UNSUMMED, *run, unsummed)
        extremes = {row["key"]: (row["min_val"], row["max_val"]) for row in rows}
        sums = {row["key"]: list(row["sums"]) for row in rows}
        for chunk in chunks:  # few: only a registry migrated from an older build has them
            values = unpack("d", chunk["vals"])
            low, high, total = summary(values)
            known_low, known_high = extremes[chunk["key"]]
            extremes[chunk["key"]] = (
                low if known_low is None else min(known_low, low),
                high if known_high is None else max(known_high, high),
            )
            chunk_sums = sums[chunk["key"]]
            chunk_sums[chunk_sums.index(None)] = total  # in chunk order, as _SUMMARIES lists them
        found = []
        for row in rows:
            total = summed(sums[row["key"]])
            low, high = extremes[row["key"]]
            found.append(
                {
                    "key": row["key"],
                    "last": last[row["key"]],
                    "min": low,
                    "max": high,
                    "sum": total if math.isfinite(total) else None,
                    "points": row["points"],
                }
            )
        return found

    async def last_step(self, run: tuple[str, str, str]) -> int | None:
        """The highest step the run logged (W&B's lastHistoryStep), None before its first point."""
        return await self.pool.fetchval(
            "SELECT max(last_step) FROM run_metric_chunks WHERE entity = $1 AND project = $2 AND run_id = $3", *run
        )

    async def metric_count(self, run: tuple[str, str, str]) -> int:
        """How many metrics the run logged (from the chunks' key index: no point is read)."""
        return await self.pool.fetchval(
            "SELECT count(DISTINCT key) FROM run_metric_chunks WHERE entity = $1 AND project = $2 AND run_id = $3", *run
        )

    async def keys(
        self, run: tuple[str, str, str], limit: int, after: str | None = None, search: str | None = None
    ) -> list[str]:
        """The names of the metrics the run logged, in name order, after `after`; with `search`, those holding it in
        any case (from the chunks' key index: no point is read)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT key FROM run_metric_chunks WHERE entity = $1 AND project = $2 AND run_id = $3 "
            "AND ($4::text IS NULL OR key > $4) AND ($5::text IS NULL OR strpos(lower(key), lower($5)) > 0) "
            "ORDER BY key LIMIT $6",
            *run,
            after,
            search,
            limit,
        )
        return [row["key"] for row in rows]

    async def points(
        self,
        run: tuple[str, str, str],
        key: str | None,
        max_points: int,
        counted: Callable[[int], None] = lambda points: None,
    ) -> list[dict[str, Any]]:
        """Every point (of one metric), in key then step order; refused, before any is read, past `max_points`.
        `counted` is told how many there are before they are read (it may refuse too)."""
        keys = None if key is None else [key]
        logged = await self.pool.fetchval(_LOGGED, *run, keys) or 0
        if logged > max_points:
            raise InvalidInput(
                f"this run has {logged:,} points, over {max_points:,} for one list: read them with "
                "history(samples:) for a chart or scanHistory(first:, after:) page by page"
            )
        counted(logged)
        curves = await self.curves(run, keys)
        return [
            {"key": k, "step": step, "value": value}
            for k in sorted(curves)
            for step, value in curves[k].between(NO_STEP, LAST_STEP)
        ]


def _last_values(last_chunks: Sequence[asyncpg.Record]) -> dict[str, float]:
    """Each metric's value at its last step, from the chunks holding it (_LAST_CHUNKS)."""
    found = {}
    for row in last_chunks:
        curve = Curve([(row["first_step"], row["last_step"], row["steps"], row["vals"])])
        found[row["key"]] = curve.point(len(curve) - 1)[1]
    return found


def _steps_of(curves: Iterable[Curve], every: bool, after: int = NO_STEP, through: int = LAST_STEP) -> list[int]:
    """The steps in (after, through] at which every one of the curves (`every`), or any, has a point, in order."""
    curves = list(curves)
    if every and curves:
        # The sparsest curve's steps, kept where each other curve has a point (a binary search in its segments): a
        # set of every step of a 5,000,000-point curve took 350 MB and a second on the event loop.
        sparsest = min(curves, key=len)
        steps = [step for part in sparsest.steps_between(after, through) for step in part]
        for curve in curves:
            if curve is not sparsest:
                steps = [step for step, value in zip(steps, curve.values_at(steps), strict=True) if value is not None]
        return steps
    found: set[int] = set()
    for curve in curves:
        for part in curve.steps_between(after, through):
            found.update(part)
    return sorted(found)


def _curves_at(
    steps: list[int],
    keys: Sequence[str],
    curves: dict[str, Curve],
    logged: dict[str, int],
    ends: Sequence[tuple[int, int, dict[str, Curve]]] = (),
) -> list[dict[str, Any]]:
    """Each curve's points at `steps` (increasing) where it has one, as history's curves; `ends`: (index, step,
    curves) whose values at that index come from those curves instead (the chunks around the run's ends)."""
    found = []
    for key in keys:
        values = curves[key].values_at(steps)
        for index, _, around in ends:
            values[index] = around[key].values_at(steps[index : index + 1])[0] if key in around else None
        kept = [(step, value) for step, value in zip(steps, values, strict=True) if value is not None]
        found.append({"key": key, "steps": [s for s, _ in kept], "values": [v for _, v in kept], "points": logged[key]})
    return found


def _page_bound(outline: Sequence[asyncpg.Record], after: int, rows: int) -> int:
    """A step by which the page surely has `rows` steps (or everything there is): the earliest step by which
    any one metric alone has that many points after `after`. Counted from the chunks' outline, no points read;
    a chunk of explicit steps may have fewer after `after` than it holds, so it counts only when it starts past it."""
    bound = LAST_STEP
    by_key: dict[str, list[asyncpg.Record]] = {}
    for row in outline:
        by_key.setdefault(row["key"], []).append(row)
    for chunks in by_key.values():
        counted = 0
        for chunk in chunks:  # by first step
            if chunk["first_step"] > after:
                counted += chunk["points"]
            elif chunk["dense"]:
                counted += chunk["last_step"] - after
            if counted >= rows:
                bound = min(bound, chunk["last_step"])
                break
    return bound
