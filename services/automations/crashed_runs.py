"""Runs whose process died without a word (SIGKILL, out of memory, a machine lost) are marked crashed, as W&B
marks them: a running run whose client beats (runs.run_heartbeat) and that has been silent (no heartbeat, no
metric batch) for `crashed_after_s` gets a RunFinished with state "crashed", by the server. One that beats again
is running again (its heartbeat resumes it), and its own finish still records how it ended. Runs of clients that
never beat (other tools, older clients) are never marked."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from modelreg.errors import Conflict, ModelregError
from modelreg.services.commands.access import service_caller
from modelreg.services.commands.application import Application
from modelreg.services.commands.commands import FinishRun

log = logging.getLogger(__name__)

CRASHED_AFTER_S = 900.0
MARKED_BY = "modelreg-run-supervisor"


async def mark_silent_runs_crashed(app: Application, crashed_after_s: float, limit: int = 100) -> int:
    """Mark the runs silent for `crashed_after_s`; returns how many were marked."""
    silent_since = datetime.now(UTC) - timedelta(seconds=crashed_after_s)
    marked = 0
    for run in await app.reads.silent_runs(silent_since, limit):
        # One id per silence: marked again before the registry shows the first mark, it is one command.
        silence = f"{run['entity']}/{run['project']}/{run['run_id']}@{run['last_heartbeat_at'].isoformat()}"
        crashed = FinishRun(
            entity=run["entity"],
            project=run["project"],
            run_id=run["run_id"],
            state="crashed",
            command_id=uuid.uuid5(uuid.NAMESPACE_URL, f"modelreg:crashed:{silence}"),
        )
        try:
            await app.execute(crashed, service_caller(MARKED_BY), wait_for_read_models=False)
        except Conflict:
            continue  # it finished meanwhile
        except ModelregError as exc:
            log.warning("run %s/%s/%s: not marked crashed: %s", run["entity"], run["project"], run["run_id"], exc)
            continue
        log.warning(
            "run %s/%s/%s: marked crashed, silent since %s",
            run["entity"],
            run["project"],
            run["run_id"],
            run["last_heartbeat_at"].isoformat(),
        )
        marked += 1
    return marked
