"""What a test session started and did not stop: found by the end of the session, stopped, and named.

Two kinds: child processes of the pytest process (agents, servers, projectors started with Popen), and
PostgreSQL servers whose data folder is in the session's temporary folders (pg_ctl detaches them, so
they are not children). Shared servers started outside the session (its DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS)
are neither, and are left alone.
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import psutil


def postmasters_in(folder: Path) -> list[psutil.Process]:
    """The postmasters (not their children) of PostgreSQL servers with a data folder inside `folder`."""
    inside = str(folder.resolve())
    found = []
    for process in psutil.process_iter(attrs=("name", "cmdline")):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] != "postgres" or "-D" not in cmdline:
            continue
        data_dir = cmdline[cmdline.index("-D") + 1] if cmdline.index("-D") + 1 < len(cmdline) else ""
        if data_dir == inside or data_dir.startswith(inside + os.sep):
            found.append(process)
    return found


def stop_postgres_in(folder: Path, timeout_s: float = 20) -> list[str]:
    """Stop (fast shutdown: SIGINT) every PostgreSQL server with its data inside `folder`."""
    postmasters = postmasters_in(folder)
    for postmaster in postmasters:
        with suppress(psutil.NoSuchProcess):
            postmaster.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(postmasters, timeout=timeout_s)
    for postmaster in alive:
        with suppress(psutil.NoSuchProcess):
            postmaster.kill()
    return [" ".join(p.info["cmdline"]) for p in postmasters]


def stop_children(timeout_s: float = 20) -> list[str]:
    """Stop every process this one started and is still running (SIGTERM, then SIGKILL)."""
    # multiprocessing's resource tracker belongs to the interpreter and ends with it: not a test's leftover.
    children = [c for c in psutil.Process().children(recursive=True) if not _is_resource_tracker(c)]
    named = []
    for child in children:
        with suppress(psutil.NoSuchProcess):
            named.append(" ".join(child.cmdline()[:6]))
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    return named


def _is_resource_tracker(process: psutil.Process) -> bool:
    with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    return False
