"""The code a job runs: a fresh checkout of the source commit with the run's uncommitted diff applied."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any


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
    folder = Path(tempfile.mkdtemp(prefix="modelreg-job-", dir=parent))
    await _git("clone", "--quiet", "--no-checkout", source["git_remote"], str(folder))
    await _git("checkout", "--quiet", source.get("git_commit") or "HEAD", cwd=folder)
    if source.get("diff_patch"):
        await _git("apply", "--whitespace=nowarn", "-", cwd=folder, stdin=source["diff_patch"].encode())
    return folder
