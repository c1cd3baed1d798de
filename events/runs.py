"""Events of training and evaluation runs. Stream: `run:<entity>/<project>/<run_id>`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelreg.events.envelope import Event
from modelreg.events.names import EntityName, ProjectName, RunId


def run_stream(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


class RunStarted(Event):
    type = "runs.run_started"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    job_type: str | None = Field(default=None, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    # Captured by the client at init: git, python, os, hardware, command line, packages.
    environment: dict[str, Any] = Field(default_factory=dict)


class RunFinished(Event):
    type = "runs.run_finished"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: Literal["finished", "failed", "crashed"]
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
