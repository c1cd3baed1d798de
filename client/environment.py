"""What a run records about where it ran, without being asked: code, interpreter, machine, packages."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any


def _git(*args: str, env: dict[str, str] | None = None, given: str | None = None, strip: bool = True) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, env=env, input=given)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


# The diff travels inside the run's first event, which must fit a Kafka broker's default 1 MB message
# with the rest of the environment. Past this size (binary files, a dataset left in the tree) it is not
# recorded: `diff_omitted_bytes` says so, and Launch refuses to clone such a run rather
# than re-run code that differs from what ran.
MAX_DIFF_BYTES = 512 * 1024
UNTRACKED_OMITTED_NAMED = 50  # a tree of thousands (an unignored virtualenv) is counted, and only so many named


def git_state() -> dict[str, Any] | None:
    """Remote, commit and the uncommitted changes as a patch (what a re-run needs to reproduce the code): changes to
    tracked files, and the files git does not track nor ignore (a helpers.py never `git add`ed), smallest first while
    they fit; those that do not are named in `untracked_omitted`."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None
    root = _git("rev-parse", "--show-toplevel")
    diff = _git("diff", "HEAD", "--binary", strip=False) or ""
    size = len(diff.encode())
    state: dict[str, Any] = {
        "remote": _git("config", "--get", "remote.origin.url"),
        "commit": commit,
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "root": root,
        "diff": diff if size <= MAX_DIFF_BYTES else "",
        **({"diff_omitted_bytes": size} if size > MAX_DIFF_BYTES else {}),
    }
    if size <= MAX_DIFF_BYTES and root is not None:
        state |= _with_untracked_files(root, diff, MAX_DIFF_BYTES - size)
    return state


def _with_untracked_files(root: str, diff: str, room: int) -> dict[str, Any]:
    """`diff` with the untracked files that fit in `room` bytes of patch added as new files, which ones, and which
    did not fit. A run that imports a module nobody `git add`ed was cloned without it, and failed on the import."""
    listed = _git("-C", root, "ls-files", "--others", "--exclude-standard", "-z", strip=False)
    if not listed:
        return {}
    sizes = {}
    for path in listed.split("\0"):
        with contextlib.suppress(OSError):
            if path:
                sizes[path] = os.stat(os.path.join(root, path)).st_size
    # A file's patch is about its size as text, a third more as binary (base85), plus its header.
    chosen, omitted, planned = [], [], 0
    for path in sorted(sizes, key=lambda p: (sizes[p], p)):
        if planned + sizes[path] * 4 // 3 + 200 + len(path) <= room:
            chosen.append(path)
            planned += sizes[path] * 4 // 3 + 200 + len(path)
        else:
            omitted.append(path)
    patch = _new_files_patch(root, chosen) if chosen else ""
    if patch is None or len(patch.encode()) > room:
        chosen, omitted, patch = [], sorted(sizes), ""
    found: dict[str, Any] = {"diff": diff + patch, "untracked": sorted(chosen)}
    if omitted:
        found["untracked_omitted"] = sorted(omitted)[:UNTRACKED_OMITTED_NAMED]
        found["untracked_omitted_count"] = len(omitted)
    return found


def _new_files_patch(root: str, paths: list[str]) -> str | None:
    """The files as a patch that creates them, made in an index of our own: the user's staging area is left alone."""
    with tempfile.TemporaryDirectory(prefix="modelreg-git-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(scratch, "index")}
        if _git("-C", root, "read-tree", "HEAD", env=env) is None:
            return None
        added = _git(
            "-C", root, "add", "--pathspec-from-file=-", "--pathspec-file-nul", env=env, given="\0".join(paths)
        )
        if added is None:
            return None
        return _git("-C", root, "diff", "--cached", "--binary", "HEAD", env=env, strip=False)


def gpus() -> list[dict[str, str]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [
        dict(zip(("name", "memory", "driver"), (p.strip() for p in line.split(",")), strict=False))
        for line in out.splitlines()
        if line
    ]


def requirements() -> list[str]:
    return sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]})


def capture() -> dict[str, Any]:
    return {
        "git": git_state(),
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "implementation": platform.python_implementation(),
        },
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "host": {"hostname": socket.gethostname(), "cpu_count": os.cpu_count(), "gpus": gpus()},
        "command": [sys.executable, *sys.argv],
        "requirements": requirements(),
        "docker_image": os.environ.get("MODELREG_DOCKER_IMAGE") or os.environ.get("DOCKER_IMAGE"),
        "launch": launch_job(),
    }


def launch_job() -> dict[str, Any] | None:
    """Set by a Launch agent: the job that started this process, and the knobs it changed."""
    job_id = os.environ.get("MODELREG_LAUNCH_JOB_ID")
    if not job_id:
        return None
    return {"job_id": job_id, "overrides": launch_value("MODELREG_LAUNCH_OVERRIDES")}


def launch_value(name: str) -> dict[str, Any]:
    """A JSON object a Launch agent hands its job: in the variable `name`, or, too large for one (Linux refuses
    a variable over 128 KiB), in the file that `name`_FILE names."""
    if raw := os.environ.get(name):
        return json.loads(raw)
    if path := os.environ.get(f"{name}_FILE"):
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return {}
