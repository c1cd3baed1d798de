"""Events of training and evaluation runs. Stream: `run:<entity>/<project>/<run_id>`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from modelreg.events.envelope import Event
from modelreg.events.names import EntityName, ProjectName, RunId


def run_stream(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


# Field types shared with the commands that ask for these events (services/commands/commands.py): one
# definition of what a valid value is, so that a command accepts exactly what its event can record.
RunName = Annotated[str, StringConstraints(max_length=200)]
JobType = Annotated[str, StringConstraints(max_length=100)]
RunEnd = Literal["finished", "failed", "crashed"]
RecordedCommands = Annotated[int, Field(ge=0)]
HostName = Annotated[str, StringConstraints(max_length=200)]


class RunStarted(Event):
    type = "runs.run_started"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: RunName | None = None
    job_type: JobType | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # Captured by the client at init: git, python, os, hardware, command line, packages.
    environment: dict[str, Any] = Field(default_factory=dict)


class RunFinished(Event):
    type = "runs.run_finished"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: RunEnd
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class MetricRow(BaseModel):
    """The values logged at one step: `run.log({"loss": 0.1, "acc": 0.9}, step=3)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int = Field(ge=0)
    values: dict[str, float] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _finite_named_numbers(cls, values: dict[str, float]) -> dict[str, float]:
        for key, value in values.items():
            if not key or len(key) > 200:
                raise ValueError(f"metric name {key!r} must have 1 to 200 characters")
            if not math.isfinite(value):
                raise ValueError(f"metric {key!r} is {value}: only finite numbers can be logged")
        return values


MetricRows = Annotated[tuple[MetricRow, ...], Field(min_length=1, max_length=10_000)]


class MetricsLogged(Event):
    """A batch of metric rows, as the client sends them (it buffers `run.log` calls)."""

    type = "runs.metrics_logged"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    rows: MetricRows


class RunSynced(Event):
    """A run recorded offline was uploaded: its commands are on the log with the times they happened
    (and their client command ids as causation ids); this event's own time is when the upload ended,
    `commands` how many recorded commands the run has."""

    type = "runs.offline_run_synced"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    commands: RecordedCommands
    first_occurred_at: AwareDatetime | None = None
    last_occurred_at: AwareDatetime | None = None
    recorded_on: HostName | None = Field(default=None, description="the recording machine's host name")
