"""What the key of a cancelled Launch job may still do until it is revoked: flush and finish the job's own runs.

A cancelled job's process is asked to stop (SIGTERM) and gets a few seconds to send its runs' last points and finish
them failed (143) before it is killed; its key is revoked a little later (projections/identity.py,
CANCELLED_JOB_KEY_GRACE_S). Meanwhile the job is over: it starts no run, logs no artifact, links no version and moves
no alias, and another run of its entity (not its job's) is not its to end.
"""

from __future__ import annotations

from modelreg.errors import PermissionDenied
from modelreg.services.commands.access import Caller
from modelreg.services.commands.commands import (
    Command,
    FinishRun,
    LogMetricBatch,
    LogMetrics,
    RaiseAlert,
    RecordRunHeartbeat,
    UpdateRunConfig,
    UpdateRunSummary,
)
from modelreg.services.commands.read_models import ReadModels

# What a stopping run sends: its last points, summary and config changes, a beat while it flushes, an alert, its end.
FLUSHING_A_RUN = (
    LogMetrics,
    LogMetricBatch,
    UpdateRunSummary,
    UpdateRunConfig,
    RecordRunHeartbeat,
    RaiseAlert,
    FinishRun,
)


async def require_what_a_cancelled_job_may_do(command: Command, caller: Caller, reads: ReadModels) -> None:
    if not caller.job_cancelled:
        return
    if not isinstance(command, FLUSHING_A_RUN):
        raise PermissionDenied(
            f"job {caller.job_id} was cancelled: its key only flushes and finishes the job's own runs until it is "
            f"revoked, a few seconds from now; {command.describe()} is not that"
        )
    run = await reads.registry.run(command.entity, command.project, command.run_id)
    launch = ((run or {}).get("environment") or {}).get("launch")
    if not isinstance(launch, dict) or launch.get("job_id") != str(caller.job_id):
        raise PermissionDenied(
            f"job {caller.job_id} was cancelled: its key only flushes and finishes the job's own runs until it is "
            f"revoked, and run {command.entity}/{command.project}/{command.run_id} is not one of them"
        )
