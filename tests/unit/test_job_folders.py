"""A killed agent's jobs leave their checkouts and files behind: the next agent on the machine removes them, and
never the folders of an agent still alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelreg.services.agent.job_folders import JobFolder, remove_abandoned

KILLED_AGENT = """
import os
import sys
from modelreg.services.agent.job_folders import JobFolder

folder = JobFolder(parent=sys.argv[1])
(folder.handed / "config.json").write_text("{}")
(folder.path / "train.py").write_text("print('training')")
print(folder.path, flush=True)
os.kill(os.getpid(), 9)
"""


def test_folders_of_a_killed_agent_are_removed_and_a_live_agents_are_kept(tmp_path: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AGENT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -9, killed.stderr
    left_behind = Path(killed.stdout.strip())
    assert (left_behind / "files" / "config.json").is_file()

    live = JobFolder(parent=tmp_path)  # a job this process (an agent alive) is running
    older = tmp_path / "modelreg-job-from-an-older-agent"  # no lock: nothing says whose it is
    older.mkdir()

    assert remove_abandoned(tmp_path) == 1
    assert not left_behind.exists()
    assert live.path.is_dir() and live.handed.is_dir() and older.is_dir()

    live.remove()
    assert not live.path.exists()
    assert remove_abandoned(tmp_path) == 0
