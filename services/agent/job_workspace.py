"""The code a job runs: a fresh checkout of the source commit with the run's uncommitted diff applied."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")


class WorkspaceError(RuntimeError):
    pass


async def _git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate(stdin)
    if process.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args[:2])} failed: {out.decode(errors='replace')[-2000:]}")


async def checkout(source: dict[str, Any], parent: Path | None = None) -> Path:
    """A new folder with the source's code; the caller removes it when the job is over."""
    commit = source.get("git_commit") or "HEAD"
    if commit != "HEAD" and not _COMMIT.fullmatch(commit):
        # A run records its commit itself (a job from a run takes it): git must not read it as an option.
        raise WorkspaceError(f"git commit {commit[:80]!r} is not a commit id (7 to 40 hex digits)")
    folder = Path(tempfile.mkdtemp(prefix="modelreg-job-", dir=parent))
    try:
        # "--": a remote such as "--upload-pack=..." is a repository to git, never an option.
        await _git("clone", "--quiet", "--no-checkout", "--", source["git_remote"], str(folder))
        await _git("checkout", "--quiet", commit, cwd=folder)
        if source.get("diff_patch"):
            await _git("apply", "--whitespace=nowarn", "-", cwd=folder, stdin=source["diff_patch"].encode())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nobody else knows of it yet
        raise
    return folder
