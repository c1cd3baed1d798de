"""What a run's summary keeps of its metrics once `define_metric` says (W&B's layout), read back from the finish
an offline run records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelreg
from modelreg.errors import InvalidInput
from modelreg.spool import Spool


def finished_summary(tmp_path: Path, define: list[dict[str, Any]], rows: list[dict[str, float]]) -> dict[str, Any]:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        for definition in define:
            modelreg.define_metric(**definition)
        for row in rows:
            run.log(row)
        folder = run.spool.folder
    (finish,) = [entry for entry in Spool(folder).entries() if entry.kind == "finish_run"]
    return finish.input["summary"]


def test_a_defined_metric_keeps_what_was_asked_in_w_and_b_layout_and_the_others_their_last_value(
    tmp_path: Path,
) -> None:
    summary = finished_summary(
        tmp_path,
        [
            {"name": "acc", "summary": "max"},
            {"name": "loss", "summary": "min"},
            {"name": "loss", "summary": "mean"},  # adds up with the line before
            {"name": "val/*", "summary": "best,last", "goal": "maximize"},
            {"name": "lr", "summary": "none"},
        ],
        [
            {"acc": 0.5, "loss": 3.0, "val/acc": 0.2, "lr": 0.1, "epoch": 0},
            {"acc": 0.9, "loss": 1.0, "val/acc": 0.8, "lr": 0.01, "epoch": 1},
            {"acc": 0.7, "loss": 2.0, "val/acc": 0.6, "lr": 0.001, "epoch": 2},
        ],
    )
    assert summary == {
        "acc": {"max": 0.9},
        "loss": {"min": 1.0, "mean": 2.0},
        "val/acc": {"best": 0.8, "last": 0.6},
        "epoch": 2.0,
    }


def test_a_summary_kind_w_and_b_does_not_know_is_refused_with_the_ones_it_does(tmp_path: Path) -> None:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path):
        with pytest.raises(InvalidInput, match="give one or more of best, last, max, mean, min, none"):
            modelreg.define_metric("acc", summary="maximum")
        with pytest.raises(InvalidInput, match="'minimize' or 'maximize'"):
            modelreg.define_metric("acc", summary="best", goal="up")


def test_best_without_a_goal_says_which_way_it_goes_as_w_and_b_asks_for_a_goal(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match='without a goal: W&B asks for goal="minimize" or goal="maximize"') as told:
        summary = finished_summary(
            tmp_path,
            [{"name": "loss", "summary": "best"}, {"name": "loss", "summary": "last"}],
            [{"loss": 2.0}, {"loss": 1.0}, {"loss": 3.0}],
        )
    assert summary == {"loss": {"best": 1.0, "last": 3.0}}
    assert len([w for w in told if "without a goal" in str(w.message)]) == 1  # said once, where "best" was asked
