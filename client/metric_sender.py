"""The background sender of a run's metrics: `run.log` hands points over and returns at once.

`log` appends each value to its metric's packed arrays (no network, no allocation per point beyond the
array's growth). A thread ships what is buffered as one batch per request (one series per metric) when
`batch_points` are waiting or the oldest waiting point is `window_s` old, so a crash of the training
process loses at most the last window. `flush` returns once everything logged before it is delivered
(`finish` calls it; so does the interpreter's exit, for a run never finished).

Memory is bounded: past `max_buffered_points` waiting or in flight (the server slower than the training
loop), `log` waits for room, after one warning (MetricsBacklog). A batch the server refuses for good
(InvalidInput: the run was finished meanwhile, say) is dropped and its error raised by the next `flush`;
an unreachable server is retried, the batch kept.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import threading
import time
import warnings
import weakref
from array import array
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import orjson

from modelreg.errors import InvalidInput, ModelregError
from modelreg.ignored import ignore
from modelreg.terminal import termwarn

BATCH_POINTS = 50_000  # the server takes up to 100,000 points a request
BATCH_METRICS = 10_000  # and up to 10,000 metrics (series): a window of 12,000 gradient norms was refused whole
WINDOW_S = 1.0
MAX_BUFFERED_POINTS = 4_000_000  # 12 bytes a point: ~48 MB at most
RETRY_EVERY_S = 5.0
SAY_WAITING_EVERY_S = 30.0  # how often a flush that waits for the server says so
# A normal exit with runs left open waits this long in all for the server: to deliver their metrics (here), then
# to record their end (session._finish_at_exit). Each once had its own wait (60 s, then 30 s more, whose finish
# flushed again without limit): an exit with the server away took 94 s and more.
EXIT_WAIT_S = 60.0
MAX_KEY_LENGTH = 200
MAX_STEP = 2**31 - 1  # PostgreSQL's integer

# Ships one batch: a list of series {"key", "firstStep", "steps" (None: dense), "values"}, and the batch's
# command id (the same on a retry, so that the server takes it once). Raises on failure.
BatchSink = Callable[[list[dict[str, Any]], UUID], None]


class MetricsBacklog(UserWarning):
    """The server takes metrics slower than the run logs them: `run.log` waits for room."""


class _Series:
    __slots__ = ("steps", "values")

    def __init__(self) -> None:
        self.steps = array("i")
        self.values = array("d")


def _storable_name(key: Any) -> bool:
    """What the server takes as a metric name (events/runs.py)."""
    return isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH and "\x00" not in key


def _mark_forked(sender: weakref.ref[MetricSender]) -> None:
    found = sender()
    if found is not None:
        found._forked = True


class MetricSender:
    def __init__(
        self,
        sink: BatchSink,
        *,
        batch_points: int = BATCH_POINTS,
        batch_metrics: int = BATCH_METRICS,
        window_s: float = WINDOW_S,
        max_buffered_points: int = MAX_BUFFERED_POINTS,
        retry_every_s: float = RETRY_EVERY_S,
    ) -> None:
        self._sink = sink
        self.batch_points = batch_points
        self.batch_metrics = batch_metrics
        self.window_s = window_s
        self.max_buffered_points = max(max_buffered_points, batch_points)
        self.retry_every_s = retry_every_s
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the sender waits here for points or a flush
        self._room = threading.Condition(self._lock)  # log and flush wait here for deliveries
        self._buffer: dict[str, _Series] = {}
        self._buffered = 0  # points in _buffer
        self._in_flight = 0  # points taken by the sender, not delivered yet
        self._oldest = 0.0  # when the oldest buffered point was logged
        self._flushing = 0
        self._closing = False
        # Set when a finish is interrupted (Ctrl-C): the sender stops retrying at once, and its points are lost.
        self._given_up = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered_at = time.monotonic()  # when a batch last reached the server (the run's heartbeat reads it)
        self._errors: list[ModelregError] = []
        self._warned = False
        self._next_step = 0
        self._known_keys: set[str] = set()
        # A process forked from this one (a data loader's worker) has this sender but not its thread: what it
        # logged waited in a buffer nobody sent, in silence.
        self._forked = False
        if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
            os.register_at_fork(after_in_child=functools.partial(_mark_forked, weakref.ref(self)))

    # -- the training thread ------------------------------------------------------------------------------

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        """Buffer the values at `step` (the next step by default; never one before the last logged)."""
        self.log_numbers({key: self._number(key, value) for key, value in values.items()}, step)

    def log_numbers(self, numbers: dict[str, float], step: int | None = None) -> None:
        """`log` for values known to be finite floats already (Run.log's, checked as it flattens them).

        The training loop's thread pays for every line here at every step: the hot path keeps to a dict
        lookup and two array appends a value."""
        if self._closing:
            raise InvalidInput("this run has finished: metrics can no longer be logged to it")
        if self._forked:
            ignore(
                "run.log in a process forked from the one that started the run",
                "its points are not sent: log from the parent process, or start a run of its own in this one",
            )
            return
        again = False  # the last logged step, logged again: its values are replaced, not added
        if step is None:
            step = self._next_step
            if step > MAX_STEP:
                raise InvalidInput(f"step {step} is not between 0 and 2**31-1: the run has no step left to log at")
        elif step != self._next_step:
            if not 0 <= step <= MAX_STEP:
                raise InvalidInput(f"step {step} is not between 0 and 2**31-1")
            if step < self._next_step - 1:
                raise InvalidInput(f"step {step} is before the last logged step {self._next_step - 1}")
            again = step == self._next_step - 1
        known = self._known_keys
        for key in numbers:
            if key not in known:
                self._check_key(key)
        with self._lock:
            if self._buffered + self._in_flight >= self.max_buffered_points:
                self._wait_for_room()
            if not self._buffered:  # the first point of a window: the sender times the window from here
                self._oldest = time.monotonic()
                self._wake.notify()
            buffer = self._buffer
            added = 0
            for key, number in numbers.items():
                series = buffer.get(key)
                if series is None:
                    series = buffer[key] = _Series()
                elif again and series.steps and series.steps[-1] == step:
                    series.values[-1] = number  # the later value wins
                    continue
                series.steps.append(step)
                series.values.append(number)
                added += 1
            self._buffered += added
            if self._buffered >= self.batch_points:
                self._wake.notify()
        self._next_step = step + 1
        if self._thread is None:
            self._start()

    def unstorable_names(self, numbers: dict[str, float]) -> list[str]:
        """The metric names of a call the server would refuse, to be left out before any point is buffered: sent,
        the whole batch they were in was refused, other metrics' points with it."""
        known = self._known_keys
        unstorable = []
        for key in numbers:
            if key not in known:
                if _storable_name(key):
                    known.add(key)
                else:
                    unstorable.append(key)
        return unstorable

    def _check_key(self, key: Any) -> None:
        if not _storable_name(key):
            raise InvalidInput(f"metric name {key!r} must be text of 1 to {MAX_KEY_LENGTH} characters")
        self._known_keys.add(key)

    def _number(self, key: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"metric {key!r} is {value!r}: only numbers can be logged") from None
        if not math.isfinite(number):
            raise InvalidInput(f"metric {key!r} is {number}: only finite numbers can be logged")
        return number

    def _wait_for_room(self) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"modelreg: the server takes metrics slower than this run logs them; {self.max_buffered_points:,} "
                "points are waiting to be sent, so run.log now waits for room (log less often, or fewer metrics)",
                MetricsBacklog,
                stacklevel=4,
            )
        self._wake.notify()
        while self._buffered + self._in_flight >= self.max_buffered_points and not self._closing:
            self._room.wait()

    def flush(self, timeout_s: float | None = None) -> None:
        """Return once every point logged so far is delivered; raise what the server refused meanwhile."""
        if self._forked:
            return  # the parent's to send; its lock may have been held by its thread when this process forked
        with self._lock:
            if self._thread is not None:
                self._flushing += 1
                self._wake.notify()
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                said_at = time.monotonic()
                try:
                    while self._buffered + self._in_flight and self._thread.is_alive():
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            break
                        self._room.wait(SAY_WAITING_EVERY_S if left is None else min(left, SAY_WAITING_EVERY_S))
                        if time.monotonic() - said_at >= SAY_WAITING_EVERY_S and self._buffered + self._in_flight:
                            # A server away for long: finish() waited with no word, and looked hung.
                            said_at = time.monotonic()
                            termwarn(
                                f"{self._buffered + self._in_flight:,} metric points still wait for the server; "
                                "waiting on (stopping the process loses them)"
                            )
                finally:
                    self._flushing -= 1
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    @property
    def waiting(self) -> int:
        """Points logged and not delivered yet."""
        return self._buffered + self._in_flight

    def close(self) -> None:
        """Flush, then stop the thread. Interrupted (Ctrl-C while the server is away), stop waiting at once: say
        how many points are lost, and let the interrupt go on."""
        if self._forked:
            return
        try:
            self.flush()
        except KeyboardInterrupt:
            self._given_up.set()  # the thread's retries stop; it is a daemon, nobody waits for it
            termwarn(f"interrupted: {self.waiting:,} metric points were not delivered and are lost")
            raise
        finally:
            with self._lock:
                self._closing = True
                self._wake.notify()
            if self._thread is not None and not self._given_up.is_set():
                self._thread.join()

    # -- the sender thread --------------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelreg-metrics", daemon=True)
        self._thread.start()
        # A run never finished still delivers what it logged when the interpreter exits normally.
        atexit.register(_flush_at_exit, weakref.ref(self))

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._due():
                    if self._closing:
                        return
                    self._wake.wait(self._time_left())
                taken, self._buffer = self._buffer, {}
                self._in_flight, self._buffered = self._buffered, 0
            for batch in _batches(taken, self.batch_points, self.batch_metrics):
                if self._given_up.is_set():
                    return
                self._deliver(batch)
                points = sum(len(s["values"]) for s in batch)
                with self._lock:
                    self._in_flight -= points
                    self._room.notify_all()

    def _due(self) -> bool:
        if not self._buffered:
            return False
        return (
            self._flushing > 0
            or self._closing
            or self._buffered >= self.batch_points
            or self._buffered + self._in_flight >= self.max_buffered_points
            or time.monotonic() - self._oldest >= self.window_s
        )

    def _time_left(self) -> float | None:
        return max(self._oldest + self.window_s - time.monotonic(), 0.001) if self._buffered else None

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        command_id = uuid4()
        while True:
            try:
                self._sink(batch, command_id)
                self.delivered_at = time.monotonic()
                return
            except ModelregError as exc:
                if exc.code == "NOT_YET_VISIBLE":
                    return  # on the log: it shows once the read models catch up
                if not exc.retriable:
                    with self._lock:
                        self._errors.append(exc)
                    return
                warnings.warn(
                    f"modelreg: metrics not sent ({exc.message}); retrying every {self.retry_every_s:g}s",
                    MetricsBacklog,
                    stacklevel=1,
                )
            except Exception as exc:  # a bug or a full disk (offline): the batch cannot be delivered
                with self._lock:
                    self._errors.append(ModelregError(f"metrics not sent: {type(exc).__name__}: {exc}"))
                return
            if self._given_up.wait(self.retry_every_s):  # a retry loop that heard no Ctrl-C kept close() waiting
                return


def _batches(series: dict[str, _Series], batch_points: int, batch_metrics: int) -> list[list[dict[str, Any]]]:
    """The buffered series cut into batches of at most `batch_points` points and `batch_metrics` series, each
    metric's points in order."""
    batches: list[list[dict[str, Any]]] = [[]]
    room = batch_points
    for key, found in series.items():
        start = 0
        while start < len(found.values):
            if room == 0 or len(batches[-1]) == batch_metrics:
                batches.append([])
                room = batch_points
            end = min(start + room, len(found.values))
            batches[-1].append(_series_input(key, found.steps[start:end], found.values[start:end]))
            room -= end - start
            start = end
    return [b for b in batches if b]


def _series_input(key: str, steps: array, values: array) -> dict[str, Any]:
    dense = steps[-1] - steps[0] + 1 == len(steps)
    return {"key": key, "firstStep": steps[0], "steps": None if dense else _listed(steps), "values": _listed(values)}


def _listed(numbers: array, piece: int = 2_000) -> list[Any]:
    """`numbers.tolist()`, a piece at a time, letting the GIL go in between: the training thread, waiting for
    it, gets it back within a piece's conversion (~0.05 ms), not after the whole series (or the interpreter's
    5 ms switch interval)."""
    listed: list[Any] = []
    for start in range(0, len(numbers), piece):
        listed += numbers[start : start + piece].tolist()
        time.sleep(0)
    return listed


def encoded(batch: list[dict[str, Any]]) -> list[orjson.Fragment]:
    """The batch's series as JSON, one at a time, letting the GIL go in between: the training thread waits
    for one series' encoding at most, never for a whole batch's (a few milliseconds for 50,000 points)."""
    fragments = []
    for series in batch:
        fragments.append(orjson.Fragment(orjson.dumps(series)))
        time.sleep(0)
    return fragments


_exit_deadline: list[float] = []


def exit_time_left() -> float:
    """What is left of EXIT_WAIT_S, counted from the first exit hook that asks: every wait at exit shares it."""
    if not _exit_deadline:
        _exit_deadline.append(time.monotonic() + EXIT_WAIT_S)
    return max(_exit_deadline[0] - time.monotonic(), 0.0)


def _flush_at_exit(sender: weakref.ref[MetricSender]) -> None:
    alive = sender()
    if alive is None or alive._forked or alive._closing:
        return
    try:
        alive.flush(timeout_s=exit_time_left())
    except ModelregError as exc:
        warnings.warn(f"modelreg: metrics logged at exit were not all delivered: {exc.message}", stacklevel=1)
    if alive.waiting:
        termwarn(
            f"{alive.waiting:,} metric points were not delivered and are lost: the server did not take them "
            f"within {EXIT_WAIT_S:g} s of the exit"
        )
