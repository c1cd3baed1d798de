"""What a launched job's process finds in its environment, as a W&B Launch job does: where to report (server,
key), which entity, project and run it is (so `modelreg.init()` with no arguments joins them), the job's id,
and the config the job was enqueued with (it wins over the script's defaults)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# What a job finds of the agent's own environment: enough to run programs and read the locale, and the machine's
# devices and libraries as the agent was given them (an agent pinned to one GPU runs its jobs on that GPU; a CUDA
# library path set for it is theirs too). Nothing the agent holds for itself (cloud credentials, tokens).
# `modelreg agent --job-env NAME` passes more by name.
_PASSED_ON = re.compile(
    r"PATH|HOME|USER|LOGNAME|SHELL|TERM|TZ|TMPDIR|LANG|LANGUAGE|LC_[A-Z]+|LD_LIBRARY_PATH"
    r"|CUDA_VISIBLE_DEVICES|CUDA_HOME|CUDA_PATH|NVIDIA_VISIBLE_DEVICES|HIP_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES"
    r"|OMP_NUM_THREADS|MKL_NUM_THREADS"
)


# Linux refuses to start a process with an environment variable over 128 KiB (MAX_ARG_STRLEN: E2BIG), a job whose
# config is that large included; kept well below it.
VARIABLE_BYTES_MAX = 64 * 1024


def launched_run_id(job_id: str, attempt: int) -> str:
    """The run a job's attempt reports as: one per attempt, so that a requeued job starts a fresh run."""
    return f"launch-{job_id.replace('-', '')[-12:]}-{attempt}"


def job_environment(job: dict[str, Any], attempt: int, files: Path | None = None) -> dict[str, str]:
    """The variables a job's process gets besides the server's URL and key (the agent's and Kubernetes' alike).
    With `files` (a folder the job can read), a config too large for a variable goes in a file there instead, named
    by the variable's name and _FILE (client/environment.py, launch_value)."""
    job_id = str(job.get("job_id") or job["id"])
    env = {
        "MODELREG_ENTITY": job["entity"],
        **({"MODELREG_PROJECT": job["project"]} if job.get("project") else {}),
        "MODELREG_RUN_ID": launched_run_id(job_id, attempt),
        "MODELREG_LAUNCH_JOB_ID": job_id,
    }
    for name, value in (("MODELREG_CONFIG_OVERRIDES", job["config"]), ("MODELREG_LAUNCH_OVERRIDES", job["overrides"])):
        text = json.dumps(value, sort_keys=True)
        if files is None or len(text.encode()) <= VARIABLE_BYTES_MAX:
            env[name] = text
        else:
            path = files / f"{name.lower()}.json"
            path.write_text(text, encoding="utf-8")
            env[f"{name}_FILE"] = str(path)
    return env


def passed_on(agent_environment: Mapping[str, str], also: Iterable[str] = ()) -> dict[str, str]:
    """The part of the agent's environment a job's process inherits."""
    named = set(also)
    return {name: value for name, value in agent_environment.items() if _PASSED_ON.fullmatch(name) or name in named}
