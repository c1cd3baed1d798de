"""A file read while training may still be writing it: what is logged must be one version of it.

A file is read in one pass that hashes what it sends (or copies), so the digest always matches the bytes sent:
a checkpoint saved again in the middle of an upload was logged torn (part old, part new), its digest agreeing,
and nothing ever noticed. Whether the file changed is asked of its metadata before and after the read: a save
changes its modification time (and often its size or inode)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from modelreg.errors import InvalidInput

T = TypeVar("T")

READS = 3  # a file saved again while read is read again, this many times in all


def file_identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def read_steadily(path: Path, read: Callable[[int], T]) -> T:
    """`read(size)` of the file as it is, again while the file changes under it; refused if it never holds
    still. `size` is the size the read may count on (the caller's progress, the manifest)."""
    for _ in range(READS):
        before = file_identity(path)
        result = read(before[0])
        after = file_identity(path)
        if after == before:
            return result
    raise InvalidInput(
        f"{path} changed while it was read, {READS} times (size {before[0]} then {after[0]}): log it once it is "
        "written, after the call that saves it returns (a copy made then, if training goes on writing it)"
    )
