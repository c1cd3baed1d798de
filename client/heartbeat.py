"""A run's "still alive" while it logs nothing: the server marks a running run crashed when its client, which
beats, has been silent for long (15 minutes by default), as W&B does for a killed or lost process. A beat is
sent when the run starts and then every `every_s` in which no metric batch reached the server, so a run that
logs sends none. An unreachable server is tried again at the next beat; the run goes on regardless."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

from modelreg.errors import ModelregError

EVERY_S = 120.0  # seven beats missed make the server's 15 minutes


class Heartbeat:
    def __init__(
        self, beat: Callable[[], object], last_heard: Callable[[], float], every_s: float | None = None
    ) -> None:
        """`beat` tells the server; `last_heard` is when (time.monotonic) the server last heard from the run."""
        self._beat, self._last_heard, self.every_s = beat, last_heard, every_s or EVERY_S
        self._stopped = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="modelreg-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._send()
        while not self._stopped.wait(self.every_s / 4):
            if time.monotonic() - max(self._last_heard(), self._sent_at) >= self.every_s:
                self._send()

    def _send(self) -> None:
        self._sent_at = time.monotonic()
        try:
            self._beat()
        except Exception as exc:  # noqa: BLE001 -- the server away, a proxy's 502 page: the thread must outlive it
            if not isinstance(exc, ModelregError) and not self._warned:
                self._warned = True
                warnings.warn(
                    f"modelreg: a heartbeat was not sent ({type(exc).__name__}: {exc}); trying again", stacklevel=1
                )

    def stop(self, wait: bool = True) -> None:
        """No beat after this returns (but for one stuck past a few seconds): a beat behind the run's finish
        would make a run marked crashed run again. `wait=False`: no new beat, without waiting for one under way
        (an interrupted finish, which must return at once)."""
        self._stopped.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
