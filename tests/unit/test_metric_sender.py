"""The background sender behind `run.log`, against an in-memory server of ours (a BatchSink)."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any
from uuid import UUID

import pytest

from modelreg import metric_sender
from modelreg.errors import InvalidInput, ModelregError, Unavailable
from modelreg.metric_sender import MetricsBacklog, MetricSender


class InMemoryServer:
    """Keeps what it receives, as the server would: per metric, (step, value) in arrival order."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.command_ids: list[UUID] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.failures: list[ModelregError] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[dict[str, Any]], command_id: UUID) -> None:
        self.gate.wait()
        time.sleep(self.delay_s)
        self.command_ids.append(command_id)
        if self.failures:
            raise self.failures.pop(0)
        with self.lock:
            self.batches.append(batch)

    def points(self, key: str) -> list[tuple[int, float]]:
        found = []
        with self.lock:
            batches = list(self.batches)
        for batch in batches:
            for series in batch:
                if series["key"] == key:
                    steps = series["steps"] or range(series["firstStep"], series["firstStep"] + len(series["values"]))
                    found += list(zip(steps, series["values"], strict=True))
        return found


def test_every_point_arrives_in_order_once_flushed() -> None:
    server = InMemoryServer()
    sender = MetricSender(server, batch_points=1000, window_s=10)
    for step in range(10_000):
        sender.log({"loss": 1 / (step + 1), "acc": step / 10_000})
    sender.log({"lr": 0.1}, step=20_000)  # a gap: explicit steps are sent for it
    sender.close()

    assert server.points("loss") == [(s, 1 / (s + 1)) for s in range(10_000)]
    assert server.points("acc") == [(s, s / 10_000) for s in range(10_000)]
    assert server.points("lr") == [(20_000, 0.1)]
    assert all(sum(len(s["values"]) for s in batch) <= 1000 for batch in server.batches)


def test_a_value_logged_again_at_the_same_step_replaces_the_buffered_one() -> None:
    server = InMemoryServer()
    sender = MetricSender(server, window_s=10)
    sender.log({"loss": 1.0}, step=0)
    sender.log({"loss": 0.5, "acc": 0.1}, step=0)
    sender.log({"loss": 0.4}, step=1)
    sender.flush()
    assert server.points("loss") == [(0, 0.5), (1, 0.4)]
    assert server.points("acc") == [(0, 0.1)]


def test_a_window_of_more_metrics_than_a_request_takes_goes_in_several_batches() -> None:
    # A window of 12,000 per-layer gradient norms was one batch, which the server refused whole (loss included).
    server = InMemoryServer()
    sender = MetricSender(server, window_s=10)
    for step in range(2):
        sender.log({f"layer{n}/grad_norm": float(step) for n in range(12_000)} | {"loss": 1.0 / (step + 1)})
    sender.close()

    assert [len(batch) for batch in server.batches] == [10_000, 2_001]
    assert server.points("loss") == [(0, 1.0), (1, 0.5)]
    assert server.points("layer11999/grad_norm") == [(0, 0.0), (1, 1.0)]


def test_log_returns_before_anything_is_sent_and_flush_waits_for_delivery() -> None:
    server = InMemoryServer()
    server.gate.clear()  # the server does not answer yet
    sender = MetricSender(server, batch_points=10, window_s=0.01)
    for step in range(100):
        sender.log({"loss": float(step)})
    assert server.batches == []

    flushed = threading.Thread(target=sender.flush)
    flushed.start()
    flushed.join(0.2)
    assert flushed.is_alive(), "flush returned before the points were delivered"
    server.gate.set()
    flushed.join(5)
    assert not flushed.is_alive()
    assert [s for s, _ in server.points("loss")] == list(range(100))
    sender.close()


def test_points_are_sent_within_the_window_without_a_flush() -> None:
    server = InMemoryServer()
    sender = MetricSender(server, batch_points=1_000_000, window_s=0.05)
    sender.log({"loss": 1.0})
    deadline = time.monotonic() + 5
    while not server.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.points("loss") == [(0, 1.0)]
    sender.close()


def test_a_crash_loses_at_most_the_last_window() -> None:
    """A process that dies without finishing: what was logged more than a window before is on the server."""
    server = InMemoryServer()
    window = 0.1
    sender = MetricSender(server, batch_points=1_000_000, window_s=window)
    logged_at: list[float] = []
    for step in range(120):
        sender.log({"loss": float(step)})
        logged_at.append(time.monotonic())
        time.sleep(0.01)
    crashed_at = time.monotonic()  # nothing is flushed: the process is gone here
    delivered = {s for s, _ in server.points("loss")}
    slack = 0.5  # scheduling on a loaded machine
    assert {s for s, at in enumerate(logged_at) if at < crashed_at - window - slack} <= delivered
    sender.close()


def test_a_slow_server_makes_log_wait_for_room_after_one_warning() -> None:
    server = InMemoryServer()
    server.gate.clear()
    sender = MetricSender(server, batch_points=100, window_s=0.01, max_buffered_points=1000)
    for step in range(1000):
        sender.log({"loss": float(step)})

    blocked = threading.Thread(target=lambda: [sender.log({"loss": float(s)}) for s in range(1000, 1500)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive(), "log kept buffering past the bound"
        server.gate.set()
        blocked.join(10)
    assert not blocked.is_alive()
    backlog = [w for w in caught if issubclass(w.category, MetricsBacklog)]
    assert len(backlog) == 1 and "waits for room" in str(backlog[0].message)
    sender.close()
    assert [s for s, _ in server.points("loss")] == list(range(1500))


def test_a_flush_that_waits_long_for_the_server_says_how_many_points_wait(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # finish() waited with no word while the server was away, and looked hung.
    monkeypatch.setattr(metric_sender, "SAY_WAITING_EVERY_S", 0.05)
    server = InMemoryServer()
    server.gate.clear()
    sender = MetricSender(server, batch_points=10, window_s=0.01)
    for step in range(100):
        sender.log({"loss": float(step)})
    flushed = threading.Thread(target=sender.flush)
    flushed.start()
    flushed.join(0.3)
    server.gate.set()
    flushed.join(5)

    assert not flushed.is_alive()
    assert "metric points still wait for the server; waiting on (stopping the process loses them)" in (
        capsys.readouterr().err
    )


def test_an_unreachable_server_is_retried_with_the_same_command_id() -> None:
    server = InMemoryServer()
    server.failures = [Unavailable("cannot reach modelreg")]
    sender = MetricSender(server, window_s=10, retry_every_s=0.01)
    sender.log({"loss": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsBacklog)
        sender.close()
    assert server.points("loss") == [(0, 1.0)]
    assert len(server.command_ids) == 2 and server.command_ids[0] == server.command_ids[1]


def test_a_refused_batch_is_reported_by_the_next_flush() -> None:
    server = InMemoryServer()
    server.failures = [InvalidInput("run acme/nature/x is already finished")]
    sender = MetricSender(server, window_s=10)
    sender.log({"loss": 1.0})
    with pytest.raises(InvalidInput, match="already finished"):
        sender.flush()
    sender.log({"loss": 2.0})
    sender.close()  # the error was reported once
    assert server.points("loss") == [(1, 2.0)]


@pytest.mark.parametrize(
    ("values", "step", "problem"),
    [
        ({"loss": float("nan")}, None, "only finite numbers"),
        ({"loss": "high"}, None, "only numbers"),
        ({"": 1.0}, None, "metric name"),
        ({"loss": 1.0}, 2**31, "not between 0 and 2\\*\\*31-1"),
        ({"loss": 1.0}, -1, "not between 0 and 2\\*\\*31-1"),
    ],
)
def test_what_the_server_would_refuse_is_refused_by_log_itself(values: dict, step: int | None, problem: str) -> None:
    sender = MetricSender(InMemoryServer())
    with pytest.raises(InvalidInput, match=problem):
        sender.log(values, step)
    sender.close()


def test_a_step_before_the_last_one_is_refused() -> None:
    sender = MetricSender(InMemoryServer())
    sender.log({"loss": 1.0}, step=5)
    sender.log({"loss": 1.0}, step=5)
    with pytest.raises(InvalidInput, match="before the last logged step 5"):
        sender.log({"loss": 1.0}, step=4)
    sender.close()


def test_nothing_can_be_logged_once_the_sender_is_closed() -> None:
    server = InMemoryServer()
    sender = MetricSender(server)
    sender.log({"loss": 1.0})
    sender.close()
    with pytest.raises(InvalidInput, match="finished"):
        sender.log({"loss": 2.0})
    assert server.points("loss") == [(0, 1.0)]


def test_a_forked_process_logging_is_told_its_points_are_not_sent() -> None:
    # A data loader's worker forked from the training process has the sender but not its thread: its points
    # waited in a buffer nobody sent, and flush() returned as if they had been.
    delivered: list[Any] = []
    sender = MetricSender(lambda batch, command_id: delivered.append(batch), window_s=0.01)
    sender.log({"loss": 1.0})
    sender.flush()
    child = os.fork()
    if child == 0:  # the worker
        code = 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sender.log({"loss": 2.0})
                sender.flush()
                sender.close()
            code = 0 if any("forked from the one that started the run" in str(w.message) for w in caught) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sender.log({"loss": 3.0})
    sender.close()
    assert [p for batch in delivered for series in batch for p in series["values"]] == [1.0, 3.0]


def test_the_step_after_the_last_one_there_is_is_refused_as_such() -> None:
    sender = MetricSender(lambda batch, command_id: None)
    sender.log({"loss": 1.0}, step=2**31 - 1)
    with pytest.raises(InvalidInput, match="no step left"):
        sender.log({"loss": 2.0})
    sender.close()
