"""What `run.log` records of the values a training script hands it (an offline run: its spool, no server)."""

from __future__ import annotations

import enum
import math
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy
import pytest

import modelreg
from modelreg.ignored import IgnoredByModelreg
from modelreg.spool import Spool


class Scalar:
    """A numpy or torch scalar, as far as `run.log` is concerned: a number behind `.item()`."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


def recorded(tmp_path: Path, *rows: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        for row in rows:
            run.log(row)
        folder = run.spool.folder
    return spooled_points(folder)


def spooled_points(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Each key's (step, value) points as an offline run spooled them."""
    points: dict[str, list[tuple[int, float]]] = {}
    for entry in Spool(folder).entries():
        for series in entry.input.get("series", []) if entry.kind == "log_metrics" else []:
            first = series["firstStep"]
            steps = series["steps"] or range(first, first + len(series["values"]))
            points.setdefault(series["key"], []).extend(zip(steps, series["values"], strict=True))
    return points


def test_run_log_records_numbers_of_every_kind_and_flattens_nested_dicts(tmp_path: Path) -> None:
    points = recorded(
        tmp_path,
        {"loss": 0.5, "epoch": 3, "best": True, "eval": {"acc": 0.9, "top": {"k5": Scalar(0.99)}, 7: 1.5}},
        {"loss": 0.25, "epoch": 4, "best": False, "eval": {"acc": 0.95, "top": {"k5": Scalar(1.0)}, 7: 2.5}},
    )
    assert points == {
        "loss": [(0, 0.5), (1, 0.25)],
        "epoch": [(0, 3.0), (1, 4.0)],
        "best": [(0, 1.0), (1, 0.0)],
        "eval.acc": [(0, 0.9), (1, 0.95)],
        "eval.top.k5": [(0, 0.99), (1, 1.0)],
        "eval.7": [(0, 1.5), (1, 2.5)],  # a nested key is named by its place, as W&B's flattened name
    }


def test_a_metric_name_that_is_not_text_is_refused_as_w_and_b_refuses_it(tmp_path: Path) -> None:
    # It was logged as "1": W&B's run.log raises, so a script that ran there never logs one.
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        with pytest.raises(TypeError, match=r"run.log: a metric name is text, not int \(1\)"):
            run.log({"loss": 0.5, 1: 3})
        run.log({"loss": 0.25})
        folder = run.spool.folder
    assert spooled_points(folder) == {"loss": [(0, 0.25)]}


def test_a_metric_name_of_a_text_type_numpy_or_an_enum_gives_is_text(tmp_path: Path) -> None:
    # numpy.str_ (names taken from an array) and StrEnum keys are text: they were refused mid-training.
    class Metric(enum.StrEnum):
        LOSS = "loss"

    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        run.log({numpy.str_("acc"): 0.5, Metric.LOSS: 0.25})
        folder = run.spool.folder
    assert spooled_points(folder) == {"acc": [(0, 0.5)], "loss": [(0, 0.25)]}


@pytest.mark.parametrize(
    ("written", "read"), [("True", True), ("1", True), ("yes", True), ("FALSE", False), ("0", False)]
)
def test_wandb_resume_written_as_text_in_the_environment_is_read_as_w_and_b_reads_it(written: str, read: bool) -> None:
    from modelreg.session import _resume

    assert _resume(written) is read


def test_text_is_no_number_however_it_reads_left_out_of_the_history_and_kept_in_the_summary(tmp_path: Path) -> None:
    # "1.10" was logged as 1.1, "007" as 7.0, b"7" as 7.0; "inf" and "nan" were dropped as floats.
    texts = {"version": "1.10", "seed": "007", "lr": "3e-4", "limit": "inf", "score": "nan"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"loss": 0.5, **texts, "raw": b"7", "nested": {"tag": "12"}, "bad": "a\x00b"})
            summary = dict(run.summary)
            folder = run.spool.folder
    assert spooled_points(folder) == {"loss": [(0, 0.5)]}
    assert summary == {"loss": 0.5, **texts, "nested.tag": "12"}  # W&B's summary keeps text; bytes are no text
    [finished] = [entry.input for entry in Spool(folder).entries() if entry.kind == "finish_run"]
    assert finished["summary"] == summary
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, IgnoredByModelreg))
    assert "logging text (such as 'version')" in said and "logging bytes values (such as 'raw')" in said


def test_w_and_bs_own_keys_logged_are_left_out_and_the_steps_go_on_as_logged(tmp_path: Path) -> None:
    # `_step` was recorded as a metric: read back, it overrode the row's step (100 in a run at step 1).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"m": 0})
            run.log({"_step": 100, "_runtime": 3.5, "_timestamp": 1.7e9, "m": 1})
            run.log({"m": 2})
            assert dict(run.summary) == {"m": 2} and run.step == 3
            folder = run.spool.folder
    assert spooled_points(folder) == {"m": [(0, 0.0), (1, 1.0), (2, 2.0)]}
    said = [str(w.message) for w in caught if issubclass(w.category, IgnoredByModelreg)]
    assert any("logging '_step' is accepted and ignored" in message for message in said)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "high", None, [1.0], 10**400])
def test_run_log_leaves_out_what_is_not_a_finite_number_and_says_so(tmp_path: Path, value: Any) -> None:
    key = f"odd_{tmp_path.name}"  # `ignore` warns once per message: a key of its own makes the message new
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        points = recorded(tmp_path, {"loss": 0.5, key: value}, {"loss": 0.25, key: 1.0})
    assert points == {"loss": [(0, 0.5), (1, 0.25)], key: [(1, 1.0)]}
    assert any(issubclass(w.category, IgnoredByModelreg) and key in str(w.message) for w in caught)


def test_a_logged_integer_stays_an_integer_in_the_summary_and_is_a_double_in_the_history(tmp_path: Path) -> None:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        run.log({"epoch": 3, "loss": 0.5, "tokens": 2**60, "batch": numpy.int64(7), "is_best": True})
        assert run.summary["is_best"] is True  # as W&B keeps it; the history holds 1.0
        assert run.summary["epoch"] == 3 and type(run.summary["epoch"]) is int  # W&B scripts compare with ints
        assert run.summary["batch"] == 7 and type(run.summary["batch"]) is int
        assert type(run.summary["tokens"]) is float  # beyond what a double holds exactly, as it is stored
    assert recorded(tmp_path / "again", {"epoch": 3})["epoch"] == [(0, 3.0)]


def test_a_step_that_is_not_an_int_is_refused_at_the_log_call_not_at_finish(tmp_path: Path) -> None:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        with pytest.raises(TypeError, match=r"run.log\(step=1.5\): a step is an int"):
            run.log({"loss": 0.5}, step=1.5)
        run.log({"loss": 0.4}, step=numpy.int64(2))  # numpy's integers are ints to W&B too
        folder = run.spool.folder
    steps = [
        series["firstStep"]
        for entry in Spool(folder).entries()
        if entry.kind == "log_metrics"
        for series in entry.input.get("series", [])
    ]
    assert steps == [2]


def left_out_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message) for w in caught if issubclass(w.category, IgnoredByModelreg) and "left out" in str(w.message)
    ]


@pytest.mark.parametrize(
    "unstorable, again, says",
    [
        ({"x" * 201: 1.0}, {"y" * 300: 1.0}, "a name is 1 to 200 characters without U+0000"),
        ({"bad\x00name": 1.0}, {"worse\x00name": 1.0}, "log it under a shorter name"),
        ({"step": 2**31}, {"step": 2**40}, "a step past 2**31-1"),
    ],
)
def test_a_metric_name_or_step_the_registry_cannot_store_is_left_out_with_one_warning_and_the_loop_goes_on(
    tmp_path: Path, unstorable: dict[str, Any], again: dict[str, Any], says: str
) -> None:
    # W&B takes them: an InvalidInput raised from run.log inside a training loop ended a job of days. What the
    # registry cannot store is left out (a bad step: the whole call), said once a run, and the loop goes on.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"a": 0.0})
            for bad in (unstorable, again):
                bad = dict(bad)
                step = bad.pop("step", None)
                run.log({"a": 1.0, **bad}, step=step)
            run.log({"a": 2.0})
            folder = run.spool.folder
    kept = [(0, 0.0), (1, 2.0)] if "step" in unstorable else [(0, 0.0), (1, 1.0), (2, 1.0), (3, 2.0)]
    assert spooled_points(folder) == {"a": kept}
    assert Spool(folder).entries()[-1].kind == "finish_run"
    [said] = left_out_warnings(caught)
    assert says in said


def test_the_last_step_there_is_can_be_logged_and_the_calls_after_it_are_left_out(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            run.log({"a": 1.0}, step=2**31 - 1, commit=True)
            run.log({"a": 2.0})  # at 2**31: there is no step left to log at
            folder = run.spool.folder
    assert spooled_points(folder) == {"a": [(2**31 - 1, 1.0)]}
    assert Spool(folder).entries()[-1].kind == "finish_run"
    [said] = left_out_warnings(caught)
    assert "run.log at step 2,147,483,648 is left out" in said and "log a count such as the tokens seen" in said


def test_a_metric_that_diverges_shows_its_inf_or_nan_in_the_summary_as_w_and_bs_does(tmp_path: Path) -> None:
    # The summary kept the last finite loss (0.1): a filter on summary_metrics.loss ranked the diverged run as good.
    loss = f"loss_{tmp_path.name}"  # `ignore` warns once per message: a key of its own makes the message new
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            for value in (0.5, 0.1, float("nan"), float("nan")):
                run.log({loss: value, "inf": value * float("inf")})
            assert math.isnan(run.summary[loss]) and math.isnan(run.summary["inf"])
            run.log({"inf": float("inf")})
            run.log({"recovered": float("-inf")})
            run.log({"recovered": 0.3})
            folder = run.spool.folder
    points = spooled_points(folder)
    assert points[loss] == [(0, 0.5), (1, 0.1)] and points["recovered"] == [(6, 0.3)] and "inf" not in points
    [finished] = [entry.input for entry in Spool(folder).entries() if entry.kind == "finish_run"]
    assert finished["summary"] == {loss: "NaN", "inf": "Infinity", "recovered": 0.3}  # as W&B shows them
    said = [w for w in caught if issubclass(w.category, IgnoredByModelreg) and loss in str(w.message)]
    assert len(said) == 1 and "the summary shows it" in str(said[0].message)


@pytest.mark.parametrize("step", [-1, 0])
def test_a_step_below_the_current_one_is_dropped_with_a_warning_as_w_and_b_drops_it(tmp_path: Path, step: int) -> None:
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        run.log({"a": 1.0}, step=1, commit=True)
        with pytest.warns(IgnoredByModelreg, match=f"run.log\\(step={step}\\) below the current step 2"):
            run.log({"a": 9.0}, step=step)
        run.log({"a": 2.0})
        folder = run.spool.folder
    assert spooled_points(folder) == {"a": [(1, 1.0), (2, 2.0)]}


def test_an_offline_run_refuses_changes_after_its_finish_as_an_online_one_does(tmp_path: Path) -> None:
    # Recorded after the finish, the sync changed the finished run.
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        run.summary["best"] = 0.9
    for change in (lambda: run.summary.update({"late": 1}), lambda: run.config.update({"lr": 0.1})):
        with pytest.raises(modelreg.errors.InvalidInput, match="has finished: change it with modelreg.Api"):
            change()
    assert Spool(run.spool.folder).entries()[-1].kind == "finish_run"


def test_config_keys_a_script_excludes_are_never_recorded(tmp_path: Path) -> None:
    config = {"lr": 0.1, "hf_token": "hf_secret", "epochs": 3}
    offline = {"project": "nature", "entity": "acme", "mode": "offline", "offline_dir": tmp_path, "config": config}
    with modelreg.init(**offline, config_exclude_keys=["hf_token"]) as run:
        assert dict(run.config) == {"lr": 0.1, "epochs": 3}
        folder = run.spool.folder
    [started] = [entry.input for entry in Spool(folder).entries() if entry.kind == "start_run"]
    assert started["config"] == {"lr": 0.1, "epochs": 3}
    with modelreg.init(**offline, config_include_keys=["lr"]) as run:
        assert dict(run.config) == {"lr": 0.1}


def test_a_table_added_to_an_artifact_as_w_and_bs_tutorials_do_is_left_out_with_a_warning() -> None:
    table = modelreg.Table(columns=["id", "pred"])
    table.add_data(0, "cat")
    artifact = modelreg.Artifact("predictions", "dataset")
    with pytest.warns(IgnoredByModelreg, match=r"artifact.add\(Table, ...\) is accepted and ignored"):
        artifact.add(table, "predictions")
    with pytest.raises(modelreg.InvalidInput, match="for str use add_file"):
        artifact.add("model.pt", "model")


def test_every_way_a_script_removes_a_summary_or_config_key_reaches_the_server() -> None:
    """`del d[k]`, `del d.k`, `pop`, `popitem` and `clear`: each sends the keys removed, none is only local."""
    from modelreg.run_values import Summary

    sent: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    summary = Summary({"a": 1, "b": 2, "c": 3, "d": 4}, report=lambda changes, removed: sent.append((changes, removed)))
    del summary["a"]
    del summary.b
    assert summary.popitem() == ("d", 4) and summary.pop("missing", None) is None
    summary.clear()
    assert sent == [({}, ("a",)), ({}, ("b",)), ({}, ("d",)), ({}, ("c",))] and summary == {}
    with pytest.raises(KeyError):
        del summary["a"]
    with pytest.raises(AttributeError, match="Summary has no key 'a'"):
        del summary.a


def test_two_threads_logging_at_once_record_each_step_once(tmp_path: Path) -> None:
    # A data loader's thread and the training loop, say: each step committed by one of them, never by both.
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:

        def logging(key: str) -> None:
            for n in range(20_000):
                run.log({key: float(n)})

        threads = [threading.Thread(target=logging, args=(key,)) for key in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        folder = run.spool.folder
    points = spooled_points(folder)
    assert sorted(v for _, v in points["a"]) == [float(n) for n in range(20_000)]
    assert sorted(v for _, v in points["b"]) == [float(n) for n in range(20_000)]
    steps = [s for key in ("a", "b") for s, _ in points[key]]
    assert len(steps) == len(set(steps)) == 40_000  # each log() its own step


def test_a_process_forked_while_a_thread_logs_does_not_hang_when_it_logs(tmp_path: Path) -> None:
    # A data loader forks its workers while the training thread may be inside run.log, holding the run's lock.
    with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
        run.log({"loss": 1.0})
        with run._logging:  # another thread of this process, inside log() as the fork happens
            child = os.fork()
            if child == 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run.log({"loss": 2.0})
                os._exit(0)
        deadline = time.monotonic() + 20
        while (waited := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        if waited == (0, 0):
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        assert waited[0] == child and os.waitstatus_to_exitcode(waited[1]) == 0
