"""What a run records about where it ran, without being asked: code, interpreter, machine, packages."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from modelreg.run_code import git_state


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
