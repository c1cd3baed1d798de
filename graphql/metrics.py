"""A run's metrics: the batch the client's sender ships (logMetricBatch), and the history read back
(`Run.history`: sampled curves for a chart, or with `byStep` sampled steps, the same for every metric, as W&B's
`run.history()` reads them; `Run.scanHistory`: every point, a page of steps at a time; `Run.historySummary`: each
metric's last value, min, max and sum, what a resumed run's summary goes on from)."""

from __future__ import annotations

from typing import Any

import graphene
from graphql.language import ast

from modelreg.errors import InvalidInput
from modelreg.graphql.inputs import command_id_field, parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, ordinal, page_of
from modelreg.projections.metric_queries import NO_STEP, MetricQueries
from modelreg.services.commands.commands import LogMetricBatch

MAX_SAMPLES = 10_000
MAX_SCAN_ROWS = 10_000
MAX_POINTS_READ = 1_000_000  # rows (or samples) times metrics, for one field
MAX_POINTS_LISTED = 100_000  # Run.metrics, one object per point
# What one request may read of every run's metrics together: aliases of one field multiply its own limit, and
# the points are turned into JSON on the event loop, where a few million of them stall every other request.
# Run.metrics costs more per point (an object resolved field by field) than history's and scanHistory's arrays.
MAX_POINTS_PER_REQUEST = 1_000_000
LISTED_POINT_WEIGHT = 10


def take_points(info: graphene.ResolveInfo, points: int, weight: int = 1) -> None:
    """Count `points` against the request's budget; past it, the field is refused, saying what to do."""
    context = info.context
    context.metric_points_read += points * weight
    if context.metric_points_read > MAX_POINTS_PER_REQUEST:
        raise InvalidInput(
            f"this request reads over {MAX_POINTS_PER_REQUEST:,} metric points across its fields (Run.metrics "
            f"counts {LISTED_POINT_WEIGHT} a point): ask for fewer runs, keys or samples in one request"
        )


class Numbers(graphene.Scalar):
    """A JSON array of numbers. A long series is one value, coerced and checked as a whole (the command
    validates every number) instead of one GraphQL value per number."""

    @staticmethod
    def serialize(value: list[float]) -> list[float]:
        return value

    @staticmethod
    def parse_value(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise InvalidInput(f"expected a JSON array of numbers, got {type(value).__name__}")
        return value

    @staticmethod
    def parse_literal(node: ast.Node, _variables: Any = None) -> list[Any]:
        if not isinstance(node, ast.ListValueNode):
            raise InvalidInput("expected an array of numbers")
        numbers: list[Any] = []
        for item in node.values:
            if isinstance(item, ast.IntValueNode):
                numbers.append(int(item.value))
            elif isinstance(item, ast.FloatValueNode):
                numbers.append(float(item.value))
            else:
                raise InvalidInput("expected an array of numbers")
        return numbers


class MetricCurve(graphene.ObjectType):
    key = graphene.String(required=True)
    steps = Numbers(required=True, description="the sampled points' steps, increasing")
    values = Numbers(required=True, description="the sampled points' values")
    points = graphene.Int(required=True, description="how many points the metric has in all")


class MetricHistoryRow(graphene.ObjectType):
    step = graphene.Int(required=True)
    values = JSONValue(required=True, description='the metrics with a point at this step: {"loss": 0.1}')


MetricHistoryPage = page_of(MetricHistoryRow, name="MetricHistoryPage")
MetricKeyPage = page_of(graphene.String, name="MetricKeyPage")


class MetricHistorySummary(graphene.ObjectType):
    key = graphene.String(required=True)
    last = graphene.Float(required=True, description="its value at its last step")
    min = graphene.Float(required=True)
    max = graphene.Float(required=True)
    sum = graphene.Float(
        description="of all its values (a mean is sum / points); null: too large to add up (a value of 1e300 or "
        "more), its mean unknown"
    )
    points = graphene.Int(required=True, description="how many values it was logged (again at a step: both count)")


def _run_of(row: dict) -> tuple[str, str, str]:
    return row["entity"], row["project"], row["run_id"]


def _keys(keys: list[str] | None) -> list[str] | None:
    if keys is not None and not keys:
        raise InvalidInput("keys: name at least one metric, or leave keys out for all of them")
    return keys


async def resolve_history(
    row: dict, info: graphene.ResolveInfo, samples: int, keys: list[str] | None = None, by_step: bool = False
) -> list:
    if not 1 <= samples <= MAX_SAMPLES:
        raise InvalidInput(f"samples must be between 1 and {MAX_SAMPLES:,}, got {samples}")
    if keys is not None and samples * len(keys) > MAX_POINTS_READ:
        raise InvalidInput(f"{len(keys)} metrics x {samples} samples is over {MAX_POINTS_READ:,} points: ask for fewer")
    # Charged before the read (aliases resolve side by side: charged after, each would read first), the
    # estimate settled against what was read.
    estimate = samples * (len(keys) if keys else 1)
    async with info.context.metric_reads:
        take_points(info, estimate)
        queries = MetricQueries(info.context.reads.pool)
        sample = queries.sampled_steps if by_step else queries.history
        curves = await sample(_run_of(row), _keys(keys), samples)
    if samples * len(curves) > MAX_POINTS_READ:
        raise InvalidInput(
            f"{len(curves)} metrics x {samples} samples is over {MAX_POINTS_READ:,} points: ask for fewer"
        )
    take_points(info, sum(len(curve["steps"]) for curve in curves) - estimate)
    return curves


async def resolve_scan_history(
    row: dict, info: graphene.ResolveInfo, first: int, keys: list[str] | None = None, after: str | None = None
) -> dict:
    if not 1 <= first <= MAX_SCAN_ROWS:
        raise InvalidInput(f"first must be between 1 and {MAX_SCAN_ROWS:,}, got {first}")
    if keys is not None and first * len(keys) > MAX_POINTS_READ:
        raise InvalidInput(f"{len(keys)} metrics x {first} steps is over {MAX_POINTS_READ:,} points: ask for fewer")
    cursors = Cursors.of(info)
    position = cursors.decode(after, ordinal)
    after_step = position[0] if position else None
    estimate = first * (len(keys) if keys else 1)  # charged before the read, as history's
    async with info.context.metric_reads:
        take_points(info, estimate)
        page = await MetricQueries(info.context.reads.pool).scan_page(
            _run_of(row), _keys(keys), NO_STEP if after_step is None else after_step, first, MAX_POINTS_READ
        )
    take_points(info, sum(len(r["values"]) for r in page.rows) - estimate)
    return {
        "items": page.rows,
        "end_cursor": cursors.encode(page.last_step) if page.last_step is not None else after,
        "has_next_page": page.has_more,
    }


async def resolve_history_summary(row: dict, info: graphene.ResolveInfo) -> list[dict]:
    async with info.context.metric_reads:
        summaries = await MetricQueries(info.context.reads.pool).logged_summaries(
            _run_of(row),
            max_points=MAX_POINTS_READ,
            # The points of chunks stored before they kept their summaries are read: charged before they are.
            counted=lambda points: take_points(info, points),
        )
    # A few numbers per chunk to read, but an object per metric in the answer (a list of runs asks it of each).
    take_points(info, len(summaries), LISTED_POINT_WEIGHT)
    return summaries


async def resolve_metric_points(row: dict, info: graphene.ResolveInfo, key: str | None = None) -> list[dict]:
    queries = MetricQueries(info.context.reads.pool)
    return await queries.points(
        _run_of(row), key, MAX_POINTS_LISTED, counted=lambda points: take_points(info, points, LISTED_POINT_WEIGHT)
    )


HISTORY_ARGUMENTS = {
    "keys": graphene.List(graphene.NonNull(graphene.String), description="the metrics (default: all of the run's)"),
}


class MetricSeriesInput(graphene.InputObjectType):
    key = graphene.String(required=True)
    first_step = graphene.Int(required=True)
    steps = Numbers(description="the points' steps, strictly increasing (default: firstStep, firstStep + 1, ...)")
    values = Numbers(required=True, description="the points' values, finite numbers")


class LogMetricBatchInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    series = graphene.List(graphene.NonNull(MetricSeriesInput), required=True, description="one per metric")
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it was logged on the client (offline runs), with a zone")


class MetricMutations(graphene.ObjectType):
    log_metric_batch = graphene.Int(
        required=True,
        input=LogMetricBatchInput(required=True),
        description="Append a batch of points to a run's metrics (one event); returns how many points it had.",
    )

    @staticmethod
    async def resolve_log_metric_batch(root: Any, info: graphene.ResolveInfo, input: dict) -> int:
        fields = {**input, "series": [{k: v for k, v in dict(s).items() if v is not None} for s in input["series"]]}
        accepted = await info.context.app.execute(parse_command(LogMetricBatch, fields), info.context.caller)
        return accepted.subject_id
