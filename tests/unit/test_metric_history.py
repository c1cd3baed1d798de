"""Metric batches as events (v2 series, v1 rows upcast) and curves read back from stored chunks."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from modelreg.events.codec import decode
from modelreg.events.runs import MetricSeries, MetricsLogged
from modelreg.projections.metric_chunks import Curve, pack


def chunk(steps: list[int], values: list[float], dense: bool = False) -> tuple[int, int, bytes | None, bytes]:
    return steps[0], steps[-1], None if dense else pack("i", steps), pack("d", values)


def test_a_v1_event_of_rows_reads_as_series_with_the_later_value_winning_a_step() -> None:
    v1 = {
        "id": "0190b4a0-0000-7000-8000-000000000001",
        "type": "runs.metrics_logged",
        "version": 1,
        "stream": "run:acme/nature/r1",
        "occurred_at": "2026-11-30T10:00:00+00:00",
        "actor": {"kind": "user", "id": "ada"},
        "correlation_id": "0190b4a0-0000-7000-8000-000000000001",
        "payload": {
            "entity": "acme",
            "project": "nature",
            "run_id": "r1",
            "rows": [
                {"step": 0, "values": {"loss": 1.0, "acc": 0.1}},
                {"step": 1, "values": {"loss": 0.5}},
                {"step": 0, "values": {"loss": 0.9}},
                {"step": 5, "values": {"acc": 0.7}},
            ],
        },
    }
    event = decode(orjson.dumps(v1)).payload
    assert isinstance(event, MetricsLogged)
    by_key = {s.key: s for s in event.series}
    assert (by_key["loss"].first_step, by_key["loss"].steps, by_key["loss"].values) == (0, None, (0.9, 0.5))
    assert (by_key["acc"].steps, by_key["acc"].values) == ((0, 5), (0.1, 0.7))


@pytest.mark.parametrize(
    ("series", "problem"),
    [
        ({"key": "loss", "first_step": 0, "values": [float("inf")]}, "finite"),
        ({"key": "loss", "first_step": 0, "steps": [0, 2, 1], "values": [1, 2, 3]}, "increase strictly"),
        ({"key": "loss", "first_step": 0, "steps": [0, 1], "values": [1.0]}, "2 steps for 1 values"),
        ({"key": "loss", "first_step": 3, "steps": [0, 1], "values": [1, 2]}, "first_step 3"),
        ({"key": "", "first_step": 0, "values": [1.0]}, "at least 1 character"),
        ({"key": "loss", "first_step": 2**31 - 1, "values": [1.0, 2.0]}, "past"),
    ],
)
def test_a_series_that_cannot_be_stored_is_refused(series: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MetricSeries.model_validate(series)


def test_a_curve_of_chunks_in_step_order_is_their_concatenation() -> None:
    curve = Curve(
        [
            chunk(list(range(0, 100)), [float(s) for s in range(100)], dense=True),
            chunk([100, 150, 200], [1.0, 2.0, 3.0]),
        ]
    )
    assert len(curve) == 103
    assert curve.point(0) == (0, 0.0)
    assert curve.point(101) == (150, 2.0)
    assert list(curve.between(98, 150)) == [(99, 99.0), (100, 1.0), (150, 2.0)]


def test_a_chunk_logged_later_over_earlier_steps_wins_them() -> None:
    curve = Curve([chunk([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0], dense=True), chunk([1, 2], [10.0, 20.0])])
    assert list(curve.between(-1, 100)) == [(0, 0.0), (1, 10.0), (2, 20.0), (3, 3.0)]


def test_a_sample_spreads_evenly_and_keeps_the_first_and_last_point() -> None:
    curve = Curve([chunk(list(range(100_000)), [float(s) for s in range(100_000)], dense=True)])
    steps, values = curve.sample(1000)
    assert len(steps) == 1000 and steps[0] == 0 and steps[-1] == 99_999
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    assert gaps <= {100, 101}
    assert values == [float(s) for s in steps]
    assert Curve([chunk([5, 6], [1.0, 2.0], dense=True)]).sample(1000) == ([5, 6], [1.0, 2.0])
