"""The signal Linux sends a child process when the thread that started it ends (PR_SET_PDEATHSIG), killed or not:
what ties the agent's jobs, and the server's local Kafka broker, to the process that started them. A process
killed with SIGKILL runs no code on its way out, so nothing else can stop what it started.

prctl is looked up here, in the parent: a child forked from a process with threads must not take the dynamic
loader's lock (another thread may have held it at the fork), and looking up a symbol does. Elsewhere than on
Linux nothing is sent.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def signal_at_parent_death(signum: int) -> None:
    """Have `signum` sent to this process when its parent ends; call it in the child (a Popen preexec_fn).

    It is the starting thread's end that counts, not its process's: start from a thread that lives as long."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signum)
