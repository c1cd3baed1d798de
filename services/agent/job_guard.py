"""A job's first process, between the agent and the job's own: it takes the job's whole process group down with
the agent. The kernel's signal at the agent's death (PR_SET_PDEATHSIG) reaches only the agent's direct child: a
job whose entry point forks (a shell wrapper, torchrun, a DataLoader's workers) left those running, and the
requeued attempt ran beside them, on the same GPUs and files.

`python -m modelreg.services.agent.job_guard ENTRY POINT...`: run in the process group the agent made for the
job (its killpg on a cancel reaches everything here); it ends as the entry point ends (its exit status, or the
signal that killed it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from modelreg.services.parent_death_signal import signal_at_parent_death

# What the kernel sends this process when the agent dies. Not SIGTERM: the agent asks the job's group to stop with
# SIGTERM (a cancel: the job may finish its run, save a checkpoint), and this process waits for the job then.
AGENT_GONE = signal.SIGUSR1


def _group_down(_signum: int, _frame: FrameType | None) -> None:
    os.killpg(0, signal.SIGKILL)  # the job's every process in the group, this one too


def _the_job_answers(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM reaches the job's processes too (the agent signals the group): how they end is theirs. A handler,
    not SIG_IGN, which the job would inherit."""


def main(argv: list[str]) -> int:
    agent = os.getppid()
    signal.signal(AGENT_GONE, _group_down)
    signal.signal(signal.SIGTERM, _the_job_answers)
    signal_at_parent_death(AGENT_GONE)
    if os.getppid() != agent:  # the agent died before the line above: nobody is told of this job
        return 1
    try:
        code = subprocess.Popen(argv).wait()
    except OSError as exc:  # the job's output says it, as the agent said it when it started the job itself
        print(f"modelreg: the job's entry point {argv[:1]} could not be started: {exc}", file=sys.stderr)
        return 127
    if code < 0:  # killed by a signal: end the same way, so the agent reports it as before
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
