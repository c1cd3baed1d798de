"""How a run ends when the script does not end it the usual way: a forked worker that finishes, changes or
starts a run; a `with` block left by an exception or sys.exit; Ctrl-C while finish waits for an absent
server; an exit without finish while the server is away. Against offline runs (their journal is what the
server would get) and an in-memory absent server of ours (a Transport's `graphql`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import modelreg
from modelreg.errors import Unavailable
from modelreg.run import Run
from modelreg.spool import Spool


def journal(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(entry.kind, entry.input) for entry in Spool(folder).entries()]


def in_a_forked_child(work: Any) -> None:
    """Run `work` in a forked child; it passes when `work` returns and warned of the fork."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                work()
            code = 0 if any("forked from the one that started the run" in str(w.message) for w in caught) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_worker_that_finishes_or_changes_the_run_leaves_the_parents_run_alone(tmp_path: Path) -> None:
    # A multiprocessing pool's worker calling run.finish() or modelreg.finish() finished the parent's run: the
    # parent's later points were refused and its own finish raised. Its summary and config changes went too.
    run = modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path)
    run.log({"loss": 1.0})

    def worker() -> None:
        run.summary["worker_best"] = 0.5
        run.config.worker_lr = 0.1
        run.finish()
        modelreg.finish()
        assert modelreg.run is None  # the worker is done with it, not the run

    in_a_forked_child(worker)
    assert modelreg.run is run
    run.log({"loss": 0.5})
    run.summary["best"] = 0.9
    run.finish()
    entries = journal(run.spool.folder)
    assert [kind for kind, _ in entries if kind != "log_metrics"] == ["start_run", "update_run_summary", "finish_run"]
    assert entries[-1][1]["state"] == "finished" and "worker_best" not in entries[-1][1]["summary"]


def test_a_forked_worker_that_calls_init_starts_its_own_run_and_the_parents_goes_on(tmp_path: Path) -> None:
    # init() finished the current run first: in a worker, that was the parent's.
    parent = modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path / "parent")

    def worker() -> None:
        own = modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path / "worker")
        assert own is not parent and modelreg.run is own
        own.log({"worker_loss": 1.0})
        own.finish()
        parent.finish()  # the inherited one, as a careless worker would: left alone

    in_a_forked_child(worker)
    parent.log({"loss": 0.5})
    parent.finish()
    assert [kind for kind, _ in journal(parent.spool.folder)] == ["start_run", "log_metrics", "finish_run"]
    (worker_spool,) = (tmp_path / "worker").iterdir()
    assert [kind for kind, _ in journal(worker_spool)] == ["start_run", "log_metrics", "finish_run"]


@pytest.mark.parametrize(("code", "state", "exit_code"), [(0, "finished", 0), (None, "finished", 0), (3, "failed", 3)])
def test_sys_exit_inside_the_with_block_records_its_code(
    tmp_path: Path, code: int | None, state: str, exit_code: int
) -> None:
    # sys.exit(0) was recorded as failed with exit code 1, sys.exit(3) as 1.
    with pytest.raises(SystemExit):
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            sys.exit(code)
    kind, finish = journal(run.spool.folder)[-1]
    assert kind == "finish_run" and (finish["state"], finish["exitCode"]) == (state, exit_code)


def test_an_exception_leaving_the_with_block_is_said_before_the_finish_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With the server away, finish waited for ever and the traceback, shown once __exit__ returned, never was.
    with pytest.raises(ValueError, match="bad batch"):
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            raise ValueError("bad batch")
    said = capsys.readouterr().err
    assert f"modelreg: run {run.path} ends with ValueError: bad batch (at test_ending_a_run.py:" in said
    assert said.index("ends with ValueError") < said.index("offline run recorded")  # before the finish
    assert journal(run.spool.folder)[-1][1]["state"] == "failed"


class AbsentServer:
    """A Transport whose server is away: every call fails as an unreachable one does, and is kept."""

    url = "http://absent.invalid"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, compress: bool = False) -> Any:
        self.calls.append(query)
        raise Unavailable("cannot reach modelreg at http://absent.invalid")


def test_ctrl_c_while_finish_waits_for_an_absent_server_stops_and_says_what_is_lost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # close() joined the sender for ever, and the sender retried every 5 s without looking whether to stop.
    server = AbsentServer()
    run = Run(server, "acme", "nature", "interrupted", {})  # type: ignore[arg-type]
    run._metrics.retry_every_s = 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.log({"loss": 1.0, "acc": 0.5})
        run.log({"loss": 0.5})

        def press_ctrl_c() -> None:
            while not run._metrics._flushing:  # once finish waits
                threading.Event().wait(0.01)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            run.finish()
        presser.join()
    said = capsys.readouterr().err
    assert "interrupted: 3 metric points were not delivered and are lost" in said
    assert f"run {run.path} was not recorded as finished (interrupted)" in said
    assert server.calls and not any("finishRun" in call for call in server.calls)  # the finish is not sent
    assert run._metrics._thread is not None
    run._metrics._thread.join(30)
    assert not run._metrics._thread.is_alive()  # it stopped retrying


EXIT_WITHOUT_FINISH = """
import os, sys, warnings
from typing import Any
from modelreg import metric_sender, session
from modelreg.errors import Unavailable
from modelreg.run import Run

metric_sender.EXIT_WAIT_S = float(sys.argv[1])  # the test's, not 60 s


class AbsentServer:
    url = "http://absent.invalid"

    def graphql(self, query: str, variables: Any = None, *, compress: bool = False) -> Any:
        raise Unavailable("cannot reach modelreg at http://absent.invalid")


warnings.simplefilter("ignore")
run = Run(AbsentServer(), "acme", "nature", "left-open", {})
run._metrics.retry_every_s = 0.01
session._watch_the_exit()
session._open.append((os.getpid(), run))  # as init records a run it started
for step in range(5):
    run.log({"loss": 1.0 / (step + 1)})
"""


def test_an_exit_without_finish_while_the_server_is_away_waits_once_and_says_what_is_lost(tmp_path: Path) -> None:
    # The metric flush waited 60 s, then the finish at exit 30 s more, whose own flush waited without limit.
    (tmp_path / "left_open.py").write_text(EXIT_WITHOUT_FINISH)
    ended = subprocess.run(
        [sys.executable, "left_open.py", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=25
    )
    assert ended.returncode == 0, ended.stderr
    assert "5 metric points were not delivered and are lost: the server did not take them within 1 s" in ended.stderr
    assert "run acme/nature/left-open could not be finished at exit: no answer within 1 s" in ended.stderr
