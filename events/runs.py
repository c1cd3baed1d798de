"""Events of training and evaluation runs. Stream: `run:<entity>/<project>/<run_id>`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from modelreg.events.envelope import Event
from modelreg.events.names import EntityName, ProjectName, RunId


def run_stream(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


RunTag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RunTags = Annotated[tuple[RunTag, ...], Field(max_length=100)]


class RunStarted(Event):
    """v2: notes, tags and group (W&B's `init(notes=, tags=, group=)`); a v1 event reads as v2 without them."""

    type = "runs.run_started"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    job_type: str | None = Field(default=None, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    # Captured by the client at init: git, python, os, hardware, command line, packages.
    environment: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = Field(default=None, max_length=100_000)
    tags: RunTags = ()
    group: str | None = Field(default=None, max_length=200)


class RunFinished(Event):
    type = "runs.run_finished"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: Literal["finished", "failed", "crashed"]
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


class MetricsLogged(Event):
    """A batch of metric rows, as the client sends them (it buffers `run.log` calls)."""

    type = "runs.metrics_logged"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    rows: tuple[MetricRow, ...] = Field(min_length=1, max_length=10_000)


class RunSynced(Event):
    """A run recorded offline was uploaded: its commands are on the log with the times they happened
    (and their client command ids as causation ids); this event's own time is when the upload ended,
    `commands` how many recorded commands the run has."""

    type = "runs.offline_run_synced"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    commands: int = Field(ge=0)
    first_occurred_at: AwareDatetime | None = None
    last_occurred_at: AwareDatetime | None = None
    recorded_on: str | None = Field(default=None, max_length=200)


class RunConfigUpdated(Event):
    """`run.config.update(...)` (or an item set) after `init`: the keys given, with their new values."""

    type = "runs.config_updated"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    changes: dict[str, Any] = Field(min_length=1)


class RunSummaryUpdated(Event):
    """`run.summary[...] = ...` or `run.summary.update(...)`: the keys given, with their new values."""

    type = "runs.summary_updated"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    changes: dict[str, Any] = Field(min_length=1)


class RunDescribed(Event):
    """The run's display name, notes, tags or group changed after `init` (`run.name = ...`, `run.tags = ...`).
    Only the fields given change; tags, when given, replace the run's tags."""

    type = "runs.run_described"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=100_000)
    tags: RunTags | None = None
    group: str | None = Field(default=None, max_length=200)


class RunAlerted(Event):
    """`run.alert(title, text, level)`: recorded in the audit history and sent as a live event (no e-mail)."""

    type = "runs.alert_raised"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=10_000)
    level: Literal["INFO", "WARN", "ERROR"] = "INFO"


class RunResumed(Event):
    """`init(id=..., resume=...)` of a finished (or failed, crashed) run: it is running again, its history goes on."""

    type = "runs.run_resumed"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
