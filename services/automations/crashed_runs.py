"""Runs whose process died without a word (SIGKILL, out of memory, a machine lost) are marked crashed, as W&B
marks them: a running run whose client beats (runs.run_heartbeat) and that has been silent (no heartbeat, no
metric batch) for `crashed_after_s` gets a RunFinished with state "crashed", by the server. One that beats again
is running again (its heartbeat resumes it), and its own finish still records how it ended. Runs of clients that
never beat (other tools, older clients) are never marked.

A run a Launch job started is marked as soon as its attempt is over and it has been silent for
ENDED_ATTEMPT_SILENT_S: its agent killed the job's processes (a cancel, a time limit) or died with them, so no
beat is coming, and waiting `crashed_after_s` showed a dead run as running for 15 minutes."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from modelreg.errors import Conflict, ModelregError
from modelreg.projections.metric_queries import MetricQueries
from modelreg.services.commands.access import service_caller
from modelreg.services.commands.application import Application
from modelreg.services.commands.commands import FinishRun

log = logging.getLogger(__name__)

CRASHED_AFTER_S = 900.0
ENDED_ATTEMPT_SILENT_S = 30.0  # room for a finish sent as the job ended to arrive first
MARKED_BY = "modelreg-run-supervisor"


async def mark_silent_runs_crashed(app: Application, crashed_after_s: float, limit: int = 100) -> int:
    """Mark the runs silent for `crashed_after_s`, and those of ended Launch attempts silent for
    ENDED_ATTEMPT_SILENT_S; returns how many were marked."""
    now = datetime.now(UTC)
    marked = 0
    for run in await app.reads.silent_runs(now - timedelta(seconds=crashed_after_s), limit):
        since = run["last_heartbeat_at"].isoformat()
        if await _marked(app, run, since, f"silent since {since}"):
            marked += 1
    for run in await app.reads.runs_of_ended_attempts(now - timedelta(seconds=ENDED_ATTEMPT_SILENT_S), limit):
        why = f"the attempt of job {run['job_id']} that started it is over (the job is {run['job_state']})"
        if await _marked(app, run, f"job {run['job_id']}", why):
            marked += 1
    return marked


async def _marked(app: Application, run: dict[str, Any], silence: str, why: str) -> bool:
    """`silence` names what the run is marked for: marked again before the registry shows the first mark, the
    same silence is one command."""
    path = f"{run['entity']}/{run['project']}/{run['run_id']}"
    crashed = FinishRun(
        entity=run["entity"],
        project=run["project"],
        run_id=run["run_id"],
        state="crashed",
        summary=await _last_logged(app, run),
        command_id=uuid.uuid5(uuid.NAMESPACE_URL, f"modelreg:crashed:{path}@{silence}"),
    )
    try:
        await app.execute(crashed, service_caller(MARKED_BY), wait_for_read_models=False)
    except Conflict:
        return False  # it finished meanwhile
    except ModelregError as exc:
        log.warning("run %s: not marked crashed: %s", path, exc)
        return False
    log.warning("run %s: marked crashed: %s", path, why)
    return True


async def _last_logged(app: Application, run: dict[str, Any]) -> dict[str, float]:
    """The summary a dead process never sent: each metric's last value, as W&B shows a crashed run's (its client
    streams them), where the run set no value of that key itself. Filters on summary metrics then find it."""
    of_run = (run["entity"], run["project"], run["run_id"])
    found = await app.read_models.registry.run(*of_run)
    kept = (found or {}).get("summary") or {}
    return {k: v for k, v in (await MetricQueries(app.reads.pool).last_values(of_run)).items() if k not in kept}
