"""What a running script changes about its run besides metrics and artifacts, each one command: config and
summary keys set after `init`, a new name, notes, tags or group, an alert. An offline run records them in
its spool under the same kinds, and `modelreg sync` sends them with these mutations."""

from __future__ import annotations

from typing import Any

RUN_CHANGES = {
    "update_run_config": "mutation($i: RunChangesInput!) { updateRunConfig(input: $i) { runId } }",
    "update_run_summary": "mutation($i: RunChangesInput!) { updateRunSummary(input: $i) { runId } }",
    "describe_run": "mutation($i: DescribeRunInput!) { describeRun(input: $i) { runId } }",
    "raise_alert": "mutation($i: RaiseAlertInput!) { raiseAlert(input: $i) { runId } }",
    "resume_run": "mutation($i: ResumeRunInput!) { resumeRun(input: $i) { runId } }",
}


def keys_changed(changes: dict[str, Any], removed: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The input of update_run_config / update_run_summary: the keys set, and those removed if any (a server
    before removals were kept refuses the field, so it is sent only when there are some)."""
    return {"changes": changes, **({"removed": list(removed)} if removed else {})}
