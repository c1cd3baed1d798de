"""What a resumed run's summary starts from: what the run's summary holds, and, for what a killed process never
sent, its history (the server's Run.historySummary), which define_metric's summaries go on from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelreg import session
from modelreg.errors import InvalidInput, ModelregError
from modelreg.run import Run

STORED = {"runId": "r1", "name": None, "jobType": None, "state": "RUNNING", "config": {}, "notes": None, "tags": []}
HISTORY = [  # logged at steps 0-2 by a process killed before its finish
    {"key": "acc", "last": 0.6, "min": 0.5, "max": 0.95, "sum": 2.05, "points": 3},
    {"key": "loss", "last": 3.0, "min": 2.0, "max": 4.0, "sum": 9.0, "points": 3},
    {"key": "lr", "last": 0.01, "min": 0.01, "max": 0.1, "sum": 0.16, "points": 3},
    {"key": "note", "last": 1.0, "min": 1.0, "max": 1.0, "sum": 3.0, "points": 3},
    {"key": "val/acc", "last": 0.7, "min": 0.2, "max": 0.8, "sum": 1.7, "points": 3},
]


class Server:
    """A Transport whose run `r1` has `summary` and HISTORY; one of an older build refuses historySummary as
    graphql-core refuses a field a type does not have."""

    url = "http://registry.invalid"

    def __init__(self, summary: dict[str, Any], older: bool = False, failing: ModelregError | None = None) -> None:
        self.summary, self.older, self.failing = summary, older, failing

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, compress: bool = False) -> Any:
        if "historySummary" in query and self.older:
            raise InvalidInput("Cannot query field 'historySummary' on type 'Run'.")
        if "historySummary" in query and self.failing:
            raise self.failing
        if "run(entity" in query:
            run = {**STORED, "group": None, "summary": self.summary, "lastHistoryStep": 2}
            return {"run": {**run, "historySummary": HISTORY} if "historySummary" in query else run}
        return {}  # beats, summary updates


@pytest.fixture
def resumed() -> Iterator[list[Run]]:
    runs: list[Run] = []
    yield runs
    for run in runs:
        if run._heartbeat is not None:
            run._heartbeat.stop()


def resume(server: Server, runs: list[Run]) -> Run:
    options = {"resume": "allow", "run_id": "r1", "project": "nature", "dir": None, "config": {}}
    run = session._resumed(server, options, "acme")  # type: ignore[arg-type]
    assert run is not None
    runs.append(run)
    return run


def test_a_killed_runs_metrics_are_in_its_resumed_summary_as_its_definitions_keep_them(resumed: list[Run]) -> None:
    # The script set "note" itself (summary["note"]), which wins over the history's last value.
    run = resume(Server({"note": "set by the script"}), resumed)
    assert run.step == 3
    assert dict(run.summary) == {"note": "set by the script", "acc": 0.6, "loss": 3.0, "lr": 0.01, "val/acc": 0.7}

    run.define_metric("acc", summary="max")
    run.define_metric("loss", summary="min,mean")
    run.define_metric("lr", summary="none")
    run.define_metric("val/*", summary="best,last", goal="maximize")
    run.define_metric("note", summary="max")
    assert dict(run.summary) == {
        "note": "set by the script",
        "acc": {"max": 0.95},
        "loss": {"min": 2.0, "mean": 3.0},
        "val/acc": {"best": 0.8, "last": 0.7},
    }
    run.log({"acc": 0.7, "loss": 1.0, "lr": 0.001, "val/acc": 0.9})
    assert dict(run.summary) == {
        "note": "set by the script",
        "acc": {"max": 0.95},
        "loss": {"min": 1.0, "mean": 2.5},
        "val/acc": {"best": 0.9, "last": 0.9},
    }


def test_a_run_the_server_marked_crashed_goes_on_from_its_history_too(resumed: list[Run]) -> None:
    # Marked crashed, its summary holds each metric's last value (services/automations/crashed_runs.py).
    run = resume(Server({"acc": 0.6, "loss": 3.0, "lr": 0.01, "note": 1.0, "val/acc": 0.7}), resumed)
    run.define_metric("acc", summary="max")
    assert run.summary["acc"] == {"max": 0.95}
    run.log({"acc": 0.7})
    assert run.summary["acc"] == {"max": 0.95}


def test_a_metric_logged_again_before_its_definition_is_not_taken_back_to_its_history(resumed: list[Run]) -> None:
    run = resume(Server({}), resumed)
    run.log({"acc": 0.6})  # the history's last value, logged again
    run.define_metric("acc", summary="max")
    assert run.summary["acc"] == 0.6  # what this process logged before the definition, as W&B keeps it


def test_on_a_server_of_an_older_build_a_resume_goes_on_from_the_summary_alone(resumed: list[Run]) -> None:
    run = resume(Server({"acc": {"max": 0.95}}, older=True), resumed)
    assert run.step == 3
    run.define_metric("acc", summary="max")
    run.log({"acc": 0.7})
    assert dict(run.summary) == {"acc": {"max": 0.95}}


def test_a_history_summary_the_server_could_not_answer_leaves_the_resume_going_on_from_the_summary(
    resumed: list[Run],
) -> None:
    # A server of the first build with historySummary failed on a sum of inf ("Float cannot represent non numeric
    # value: inf"), which names no field in its message, only in its path: the resume failed.
    failing = ModelregError("Float cannot represent non numeric value: inf", path=["run", "historySummary", 0, "sum"])
    run = resume(Server({"acc": {"max": 0.95}}, failing=failing), resumed)
    run.define_metric("acc", summary="max")
    run.log({"acc": 0.7})
    assert dict(run.summary) == {"acc": {"max": 0.95}}


def test_a_sum_too_large_to_add_up_carries_no_mean_but_the_extremes(resumed: list[Run]) -> None:
    server = Server({})
    run = resume(server, resumed)
    run._summaries.resume_from([{"key": "x", "last": 1e308, "min": -1.0, "max": 1e308, "sum": None, "points": 2}])
    run.define_metric("x", summary="min,max,mean")
    run.log({"x": 4.0})
    run.log({"x": 2.0})
    assert run.summary["x"] == {"min": -1.0, "max": 1e308, "mean": 3.0}
