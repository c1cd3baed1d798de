"""Where a job's files live on the agent's machine: one folder a job (`modelreg-job-*` in the temporary directory),
holding its checkout and the files it is handed, removed when the job is over.

An agent killed (SIGKILL, out of memory, a lost container) removed nothing: each job it ran left its checkout and its
files behind, and a machine whose agent restarts in a loop filled its disk. So the folder holds a lock for as long as
its agent lives (an flock, which the kernel lets go when the process dies, however it dies), and an agent starting
removes the folders whose lock nobody holds: never another live agent's, on the same machine or not."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("modelreg.agent")

PREFIX = "modelreg-job-"
MAKING = ".modelreg-making-job-"  # a folder not yet locked: no sweep looks at it
LOCK = ".held-by-agent"


class JobFolder:
    """A job's folder, held until `remove()`: `path` for its checkout, `handed` for the files it is given (outside
    the checkout, whose uncommitted changes the job's run records)."""

    def __init__(self, parent: Path | None = None) -> None:
        # Made and locked under a name the sweep passes over, then renamed (atomic, and the lock goes with it): a
        # sweep that met the folder between its making and its lock removed it from under the job.
        making = Path(tempfile.mkdtemp(prefix=MAKING, dir=parent))
        try:
            self._lock = os.open(making / LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except BaseException:
            shutil.rmtree(making, ignore_errors=True)
            raise
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            (making / "files").mkdir(mode=0o700)
            self.path = making.with_name(PREFIX + making.name.removeprefix(MAKING))
            making.rename(self.path)
        except BaseException:
            shutil.rmtree(making, ignore_errors=True)
            os.close(self._lock)
            raise
        self.handed = self.path / "files"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock)  # after: a sweep must never find the folder unheld while it is being removed


def remove_abandoned(parent: Path | None = None) -> int:
    """Removes the job folders under `parent` (the temporary directory) whose agent died, and says how many.
    A folder without a lock (an older agent's, or one made a moment ago) is left: nothing tells whose it is."""
    removed = 0
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            lock = os.open(folder / LOCK, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue  # no lock (or not a folder, or not ours to open)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue  # a live agent's job
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        finally:
            os.close(lock)
    if removed:
        log.info("removed %d job folder(s) left behind by agents that died", removed)
    return removed
