"""The code a run ran, as a clone of it (Launch) gets it back: its git remote and commit, and its uncommitted work as
one patch that `git apply` takes on a fresh checkout: the changes to tracked files, and the Python files git neither
tracks nor ignores (a helpers.py nobody `git add`ed yet; a clone of a run importing it failed on the import).

Only Python source of the untracked files, as W&B's `log_code` takes by default: an untracked `.env` or
`kaggle.json` would go into the run's first event, kept for good and shown to whoever reads the run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import PurePosixPath
from typing import Any

# The patch travels inside the run's first event, which must fit a Kafka broker's default 1 MB message with the rest
# of the environment. Past this size (binary files, a dataset left in the tree) changes to tracked files are not
# recorded: `diff_omitted_bytes` says so, and Launch refuses to clone such a run rather than re-run code that differs
# from what ran.
MAX_DIFF_BYTES = 512 * 1024
UNTRACKED_OMITTED_NAMED = 50  # only so many are named; `untracked_omitted_count` counts them all
# Whatever the user's git configuration says: colour, an external diff tool, a textconv filter or no a/ b/ prefixes
# make a patch `git apply` refuses or misreads.
_PATCH = ("--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
# Folders whose Python files are not the project's code: the clients' own run folders, packages installed.
_NOT_CODE = frozenset({"modelreg", "modelreg-offline", "wandb", "site-packages", "node_modules", "__pycache__"})


def _git(*args: str, env: dict[str, str] | None = None, given: bytes | None = None) -> bytes | None:
    """git's output as bytes: read as text, CRLF line ends were turned into LF in the patch, and a file that is not
    UTF-8 failed `init`."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=30, env=env, input=given)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _line(raw: bytes | None) -> str | None:
    text = _text(raw)
    return text.strip() if text is not None else None


def git_state() -> dict[str, Any] | None:
    """Remote, commit, and the uncommitted work as a patch; None outside a repository with a commit."""
    commit = _line(_git("rev-parse", "HEAD"))
    if commit is None:
        return None
    root = _line(_git("rev-parse", "--show-toplevel"))
    # From the root: with the user's diff.relative, a diff made from a script's folder names paths from there.
    raw = (_git("-C", root, "diff", "HEAD", *_PATCH) if root is not None else None) or b""
    diff = _text(raw)
    state: dict[str, Any] = {
        "remote": _line(_git("config", "--get", "remote.origin.url")),
        "commit": commit,
        "branch": _line(_git("rev-parse", "--abbrev-ref", "HEAD")),
        "root": root,
        "diff": diff if diff is not None and len(raw) <= MAX_DIFF_BYTES else "",
    }
    if diff is None or len(raw) > MAX_DIFF_BYTES:
        state["diff_omitted_bytes"] = len(raw)
        if diff is None:
            state["diff_not_text"] = True  # a tracked file changed that is neither UTF-8 text nor binary to git
        return state
    if root is not None:
        state |= _with_untracked_code(root, diff, MAX_DIFF_BYTES - len(raw))
    return state


def _with_untracked_code(root: str, diff: str, room: int) -> dict[str, Any]:
    """`diff` with the untracked Python files that fit in `room` bytes of patch, smallest first, added as new files;
    which ones; and which were left out (too large, or not UTF-8)."""
    listed = _git("-C", root, "ls-files", "--others", "--exclude-standard", "-z")
    sizes: dict[str, int] = {}
    left_out: list[str] = []
    for raw_path in (listed or b"").split(b"\0"):
        path = _text(raw_path)
        if not path or not _is_code(root, path):
            continue  # a nested repository's folder ends in "/", and is not a file
        try:
            size = os.stat(os.path.join(root, path)).st_size
        except OSError:
            continue
        lines = _lines_of_text(os.path.join(root, path)) if size <= room else None
        if lines is None:
            left_out.append(path)
        else:
            # Its patch: its lines, each after a "+", and a header naming it twice.
            sizes[path] = size + lines + 2 * len(raw_path) + 200
    chosen: list[str] = []
    planned = 0
    for path in sorted(sizes, key=lambda p: (sizes[p], p)):
        if planned + sizes[path] <= room:
            chosen.append(path)
            planned += sizes[path]
    patch = ""
    for _ in range(5):  # a file git takes for binary makes a larger patch than planned: leave out the largest
        made = _text(_new_files_patch(root, chosen)) if chosen else ""
        if made is not None and len(made.encode()) <= room:
            patch = made
            break
        chosen.pop()
    else:
        chosen = []
    recorded = set(chosen)
    omitted = sorted([*left_out, *(p for p in sizes if p not in recorded)])
    found: dict[str, Any] = {"diff": diff + patch, "untracked": sorted(chosen)}
    if omitted:
        found["untracked_omitted"] = omitted[:UNTRACKED_OMITTED_NAMED]
        found["untracked_omitted_count"] = len(omitted)
    return found


def _is_code(root: str, path: str) -> bool:
    parts = PurePosixPath(path).parts
    if not path.endswith(".py") or any(p.startswith(".") or p in _NOT_CODE for p in parts[:-1]):
        return False
    if parts[-1].startswith("."):
        return False
    # A virtualenv (its folder holds pyvenv.cfg) or a conda environment (conda-meta/) nobody ignored.
    return not any(
        os.path.exists(os.path.join(root, *parts[:depth], marker))
        for depth in range(1, len(parts))
        for marker in ("pyvenv.cfg", "conda-meta")
    )


def _lines_of_text(file: str) -> int | None:
    """How many lines the file has; None when it is not UTF-8 (a patch of it would not be text)."""
    try:
        with open(file, "rb") as f:
            content = f.read()
        content.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return content.count(b"\n") + 1


def _new_files_patch(root: str, paths: list[str]) -> bytes | None:
    """The files as a patch that creates them, made in an index of our own (the user's staging area is left alone)
    against the empty tree: against HEAD, a file untracked with `git rm --cached` came out as no change, or as a
    change `git apply` refused after the tracked diff's deletion of it."""
    empty_tree = _line(_git("-C", root, "hash-object", "-t", "tree", os.devnull))
    if empty_tree is None:
        return None
    with tempfile.TemporaryDirectory(prefix="modelreg-git-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(scratch, "index")}
        # Literal: a file named a[1].py is that file, not a pattern matching a1.py. On the command line rather than
        # --pathspec-from-file, which git before 2.26 lacks: at most a few thousand files fit the patch anyway.
        added = _git("--literal-pathspecs", "-C", root, "add", "--", *paths, env=env)
        if added is None:
            return None
        return _git("-C", root, "diff", "--cached", empty_tree, *_PATCH, env=env)
